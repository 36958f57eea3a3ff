// A job's page, in tabs: its overview, sections and schema (each change names the version
// it was made on), its tasks live, its artifacts, and its audit log.
import { $, el, guardUnsaved, itemId, loaded, pill, setPill } from "../core/dom.js";
import { api } from "../core/api.js";
import { notFound, showError } from "../core/errors.js";
import { listState, pushListState } from "../core/address.js";
import { downloadStored } from "../core/files.js";
import { when } from "../core/format.js";
import { FINISHED, follow } from "../core/stream.js";
import { tabsOf } from "../core/tabs.js";
import { start } from "../core/start.js";
import { auditEntry } from "./job-audit.js";
import { taskForm } from "./job-task-form.js";

start(() => {
  let job = null;
  const followed = new Set();
  const taskKinds = new Map(); // task id -> kind, for the audit log
  const filtered = () => (["status", "kind"].some((name) => new URLSearchParams(location.search).get(name)) ? "tasks" : null);
  const tabs = tabsOf($('[role="tablist"]'), filtered);
  let artifactCount = null;
  let lastEntry = null; // the newest audit event shown

  // The overview tab: the job's state at a glance, kept current with the other tabs.
  function overview() {
    if (!job) return;
    $("#overview-sections").textContent = `${job.sections.length} · ${job.sections_confirmed ? "confirmed" : "not confirmed"}`;
    const counts = new Map();
    for (const row of document.querySelectorAll("#tasks tbody tr[data-status]")) counts.set(row.dataset.status, (counts.get(row.dataset.status) || 0) + 1);
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    $("#overview-tasks").replaceChildren(total ? `${total}: ` : "none yet",
      ...[...counts].flatMap(([status, n], i) => [i ? " " : "", pill(status, `${n} ${status}`)]));
    $("#overview-artifacts").textContent = artifactCount === null ? "" : artifactCount ? String(artifactCount) : "none yet";
    $("#overview-last").textContent = lastEntry ? `${lastEntry.event_type} · ${when(lastEntry.created_at)} · by ${lastEntry.actor}` : "";
  }

  function sectionEditor(section, index) {
    const box = el("fieldset", { class: "section" },
      el("legend", { text: `Section ${index + 1}` }),
      el("label", { for: `section-title-${index}`, text: "Title" }),
      el("input", { id: `section-title-${index}`, class: "section-title", value: section.title, maxlength: "300" }),
      el("label", { for: `section-content-${index}`, text: "Content" }),
      el("textarea", { id: `section-content-${index}`, class: "section-content", rows: "4" }));
    box.querySelector("textarea").value = section.content;
    return box;
  }

  function render() {
    $("#job-title").textContent = job.title;
    $("#job-version").textContent = job.version;
    setPill($("#gate-confirmed"), job.sections_confirmed ? "ok" : "open", job.sections_confirmed ? "sections confirmed" : "sections not confirmed");
    setPill($("#gate-schema"), job.schema_dirty ? "dirty" : "ok", job.schema_dirty ? "schema dirty" : "schema clean");
    $("#sections").replaceChildren(...job.sections.map(sectionEditor));
    $("#schema").value = job.current_schema ? JSON.stringify(job.current_schema, null, 2) : "";
    overview();
  }

  function sections() {
    return [...document.querySelectorAll("#sections fieldset")].map((box) => ({
      title: box.querySelector(".section-title").value,
      content: box.querySelector(".section-content").value,
    }));
  }
  const savedSections = () => (job ? job.sections.map((s) => ({ title: s.title, content: s.content })) : []);
  const sectionsUnsaved = () => job !== null && JSON.stringify(sections()) !== JSON.stringify(savedSections());
  const schemaText = () => (job && job.current_schema ? JSON.stringify(job.current_schema, null, 2) : "");
  const schemaUnsaved = () => job !== null && $("#schema").value.trim() !== schemaText().trim();
  guardUnsaved(() => sectionsUnsaved() || schemaUnsaved());

  // Every change names the version it was made on; a stale one is the API's 412.
  async function change(fields, errorId) {
    showError(errorId, null);
    try {
      job = await api("PATCH", `/v1/jobs/${itemId}`, { json: fields, headers: { "If-Match": `"${job.version}"` } });
      render();
      await loadEvents();
    } catch (error) {
      if (error.status === 412) $("#conflict").hidden = false;
      else showError(errorId, error);
    }
  }

  async function loadJob() {
    job = await api("GET", `/v1/jobs/${itemId}`);
    $("#conflict").hidden = true;
    render();
  }

  // The audit log is read once and then only what came after it, page by page: a job with
  // hundreds of events shows them all, and its tasks (found by task.queued) too.
  const EVENT_PAGE = 500;
  // Event ids come from a sequence: on PostgreSQL a transaction that took a lower id may
  // commit after one with a higher id was read. Each read goes back over the last few
  // events seen, and adds those it had not, in id order.
  const OVERLAP = 50;
  const seenEvents = [];
  const seen = new Set();
  let eventsRead = Promise.resolve();
  function loadEvents() {
    // One reader at a time: two overlapping reads from one position would show events twice.
    eventsRead = eventsRead.catch(() => {}).then(readNewEvents);
    return eventsRead;
  }
  async function readNewEvents() {
    // A task read finished after the events were read: its last events committed before that
    // read, maybe after the events' read, so the events are read once more.
    while (await readEventsOnce());
    overview();
  }
  async function readEventsOnce() {
    let after = seenEvents.length > OVERLAP ? seenEvents[seenEvents.length - OVERLAP - 1] : 0;
    let finishedTask = false;
    for (;;) {
      const read = await api("GET", `/v1/jobs/${itemId}/events?after=${after}&limit=${EVENT_PAGE}`);
      const events = read.filter((e) => !seen.has(e.id));
      // The tasks first: an event names its task's kind, read from the task.
      const taskIds = [...new Set(events.filter((e) => e.event_type === "task.queued").map((e) => e.payload.task_id))];
      for (const id of taskIds) {
        if (!document.getElementById(`task-${id}`) && FINISHED.has((await addTask(id)).status)) finishedTask = true;
      }
      for (const e of events) showEvent(e);
      if (read.length) after = read[read.length - 1].id;
      if (read.length < EVENT_PAGE) return finishedTask;
    }
  }
  function showEvent(e) {
    seen.add(e.id);
    const entry = auditEntry(e, { kindOf: (id) => taskKinds.get(id), reveal: tabs.reveal });
    // Nearly always the newest: appended; a late one goes before the first newer one.
    let at = seenEvents.length;
    while (at > 0 && seenEvents[at - 1] > e.id) at -= 1;
    const next = at < seenEvents.length ? document.querySelector(`#events li[data-id="${seenEvents[at]}"]`) : null;
    seenEvents.splice(at, 0, e.id);
    $("#events").insertBefore(entry, next);
    if (at === seenEvents.length - 1) lastEntry = e;
  }

  function taskRow(task) {
    // data-label: on a phone each row is a card, and each cell says what it is.
    const row = document.getElementById(`task-${task.id}`) || el("tr", { id: `task-${task.id}` },
      el("td", { "data-label": "Task" }, el("a", { href: `/console/tasks/${task.id}` }, el("code", { text: task.id.slice(0, 8) })), ` ${task.kind}`),
      el("td", { class: "status", "data-label": "Status" }), el("td", { class: "stage", "data-label": "Stage" }),
      el("td", { "data-label": "Progress" }, el("progress", { max: "1", value: "0", "aria-label": `progress of task ${task.id.slice(0, 8)}` })),
      el("td", { class: "actions", "data-label": "Actions" }), el("td", { class: "result", "data-label": "Result" }));
    if (task.kind) { row.dataset.kind = task.kind; taskKinds.set(task.id, task.kind); } // a change event carries no kind
    row.querySelector(".result").replaceChildren(...taskLinks({ ...task, kind: row.dataset.kind }));
    const status = row.querySelector(".status");
    status.replaceChildren(pill(task.status));
    if (task.error) status.append(" ", el("span", { class: "error-text", text: task.error }));
    row.querySelector(".stage").textContent = task.stage || "";
    row.querySelector("progress").value = task.progress;
    row.dataset.status = task.status;
    filterRow(row);
    if (row.isConnected) overview();
    const actions = row.querySelector(".actions");
    actions.replaceChildren();
    if (!FINISHED.has(task.status)) {
      const cancel = el("button", { type: "button", text: "Cancel" });
      cancel.addEventListener("click", async () => { try { taskRow(await api("POST", `/v1/tasks/${task.id}/cancel`)); } catch (error) { showError("task-error", error); } });
      actions.append(cancel);
    } else if (task.status !== "completed") {
      const retry = el("button", { type: "button", text: "Retry" });
      retry.addEventListener("click", async () => {
        try { taskRow(await api("POST", `/v1/tasks/${task.id}/retry`)); watch(task.id, true); } catch (error) { showError("task-error", error); }
      });
      actions.append(retry);
    }
    return row;
  }

  // Where a task's work can be read: an extraction's run page, a generation's prompt page.
  function taskLinks(task) {
    // The worker creates the run when it starts the task; until then there is no run page.
    if (task.kind === "extract" && task.status !== "queued") return [el("a", { href: `/console/runs/${task.id}`, text: "extraction run" })];
    if (task.kind === "generate" && task.result && task.result.prompt_id) {
      return [el("a", { href: `/console/prompts/${task.result.prompt_id}`, text: `prompt, version ${task.result.version}` })];
    }
    return [];
  }

  // Live stage and progress: one SSE stream per unfinished task, no reload.
  async function watch(id, again = false) {
    if (followed.has(id) && !again) return;
    followed.add(id);
    try {
      await follow(`/v1/tasks/${id}/events`, async (_name, data) => {
        // An event that is not the task itself (e.g. a job event) still means "it changed".
        try {
          let task = data && data.id === id && data.status ? data : await api("GET", `/v1/tasks/${id}`);
          // A change carries no kind or result: the finished task is read once, whole.
          if (FINISHED.has(task.status) && !task.kind) task = await api("GET", `/v1/tasks/${id}`);
          const was = document.getElementById(`task-${id}`)?.dataset.status;
          taskRow(task);
          // A new status is a new audit event (task.started, task.completed...): show it.
          if (task.status !== was) await loadEvents();
          if (task.status === "completed") await loadArtifacts();
        } catch (error) { showError("task-error", error); }
      });
    } catch (error) { showError("task-error", error); }
    followed.delete(id);
  }

  function showTasksEmpty() {
    if (document.querySelector("#tasks tr.placeholder")) return; // still loading
    const rows = [...document.querySelectorAll("#tasks tbody tr:not(.placeholder)")];
    $("#tasks-empty").hidden = rows.length > 0;
    $("#tasks-filtered").hidden = !rows.length || rows.some((r) => !r.hidden);
  }
  // Linkable filters: ?status=failed&kind=export shows those tasks, and a reload keeps them.
  const FILTERS = { status: "", kind: "" };
  function filterRow(row) {
    const f = listState(FILTERS);
    row.hidden = (f.status && row.dataset.status !== f.status) || (f.kind && row.dataset.kind !== f.kind);
  }
  function applyFilters() {
    const f = listState(FILTERS);
    $("#filter-status").value = f.status;
    $("#filter-kind").value = f.kind;
    for (const row of document.querySelectorAll("#tasks tbody tr:not(.placeholder)")) filterRow(row);
    showTasksEmpty();
  }
  for (const id of ["#filter-status", "#filter-kind"]) {
    $(id).addEventListener("change", () => {
      pushListState({ status: $("#filter-status").value, kind: $("#filter-kind").value }, FILTERS);
      applyFilters();
    });
  }
  window.addEventListener("popstate", applyFilters);
  applyFilters();

  async function addTask(id) {
    const task = await api("GET", `/v1/tasks/${id}`);
    $("#tasks tbody").prepend(taskRow(task));
    showTasksEmpty();
    overview();
    if (!FINISHED.has(task.status)) watch(id);
    return task;
  }

  async function loadArtifacts() {
    const artifacts = await api("GET", `/v1/jobs/${itemId}/artifacts`);
    const kinds = [...new Set(artifacts.map((a) => a.kind))];
    artifactCount = artifacts.length;
    overview();
    $("#artifacts-empty").hidden = artifacts.length > 0;
    $("#artifacts").replaceChildren(...kinds.map((kind) => {
      const versions = artifacts.filter((a) => a.kind === kind).sort((a, b) => b.version - a.version);
      return el("section", { class: "artifact-kind" }, el("h3", { text: kind }),
        el("ul", {}, ...versions.map((a, i) => {
          const button = el("button", { type: "button", class: "download", "data-artifact": a.id, text: `Download ${a.filename}` });
          button.addEventListener("click", async () => {
            showError("artifact-error", null);
            try { await downloadStored(`/v1/artifacts/${a.id}/download`, a.filename); }
            catch (error) { showError("artifact-error", error); }
          });
          return el("li", { "data-version": String(a.version), id: `artifact-${a.id}`, tabindex: "-1" },
            `v${a.version}${i === 0 ? " (latest)" : ""} · ${a.size} bytes · sha256 `,
            el("code", { text: a.sha256.slice(0, 16) + "…", title: a.sha256 }), " ", button);
        })));
    }));
  }

  $("#reload").addEventListener("click", loadJob);
  $("#add-section").addEventListener("click", () => {
    const list = sections();
    list.push({ title: `Section ${list.length + 1}`, content: "" });
    $("#sections").replaceChildren(...list.map(sectionEditor));
  });
  $("#sections-form").addEventListener("submit", (event) => { event.preventDefault(); change({ sections: sections() }, "sections-error"); });
  $("#confirm-sections").addEventListener("click", () => {
    // Confirming names the stored sections: edits on screen would be silently left out.
    if (!job.sections.length) {
      showError("sections-error", "The job has no sections: add and save at least one before confirming.");
      return;
    }
    if (sectionsUnsaved()) {
      showError("sections-error", "The sections have unsaved edits: save them (or reload) before confirming.");
      return;
    }
    change({ sections_confirmed: true }, "sections-error");
  });
  $("#clear-dirty").addEventListener("click", () => change({ schema_dirty: false }, "schema-error"));
  $("#schema-form").addEventListener("submit", (event) => {
    event.preventDefault();
    let schema;
    try { schema = $("#schema").value.trim() ? JSON.parse($("#schema").value) : null; }
    catch (error) { showError("schema-error", `The schema is not valid JSON: ${error.message}`); return; }
    change({ current_schema: schema }, "schema-error");
  });
  // A task the form sent: its row (unless its stream or the audit log showed it first), its
  // stream, and its audit events.
  function submitted(task) {
    if (!document.getElementById(`task-${task.id}`)) $("#tasks tbody").prepend(taskRow(task));
    showTasksEmpty();
    overview();
    watch(task.id);
    loadEvents();
  }
  taskForm({ job: () => job, submitted });

  (async () => {
    try { await loadJob(); await loadEvents(); await loadArtifacts(); loaded(); showTasksEmpty(); }
    catch (error) { if (!notFound(error, "job", "/console/jobs")) showError("page-error", error); }
  })();
});

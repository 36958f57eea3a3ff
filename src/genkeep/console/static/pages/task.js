// A task's own page: its status and attempts, where and when it ran, its error, payload,
// artifacts and audit events; live while it runs.
import { $, body, el, itemId, loaded, setPill, traceLink } from "../core/dom.js";
import { api } from "../core/api.js";
import { notFound, showError } from "../core/errors.js";
import { downloadStored } from "../core/files.js";
import { took, when } from "../core/format.js";
import { FINISHED, follow } from "../core/stream.js";
import { start } from "../core/start.js";

start(() => {
  let task = null;
  function render(t) {
    task = { ...task, ...t };
    $("#task-kind").textContent = task.kind;
    setPill($("#task-status"), task.status);
    body.dataset.taskStatus = task.status;
    $("#task-job").href = `/console/jobs/${task.job_id}`;
    $("#task-progress").value = task.progress;
    $("#task-stage").textContent = task.stage || "";
    $("#task-attempts").textContent = `${task.attempts} of at most ${task.max_attempts}`;
    $("#task-worker").textContent = task.worker_id || "not claimed yet";
    $("#task-created").textContent = when(task.created_at);
    $("#task-started").textContent = when(task.started_at) || "not started";
    $("#task-finished").textContent = when(task.finished_at) || (FINISHED.has(task.status) ? "" : "not finished");
    $("#task-took").textContent = took(task.started_at, task.finished_at);
    $("#task-trace").replaceChildren(traceLink(task.trace_id));
    $("#task-error-text").textContent = task.error || "none";
    $("#task-payload").textContent = JSON.stringify(task.payload, null, 2);
    const result = task.result;
    const links = [];
    if (task.kind === "generate" && result && result.prompt_id) links.push(el("a", { href: `/console/prompts/${result.prompt_id}`, text: `prompt, version ${result.version}` }));
    if (task.kind === "extract" && task.status !== "queued") links.push(el("a", { href: `/console/runs/${task.id}`, text: "extraction run" }));
    $("#task-result").replaceChildren(...links, result ? el("pre", { class: "content", text: JSON.stringify(result, null, 2) }) : el("p", { text: FINISHED.has(task.status) ? "No result." : "No result yet." }));
    $("#task-cancel").disabled = FINISHED.has(task.status);
    $("#task-retry").disabled = !(task.status === "failed" || task.status === "cancelled");
  }
  async function events() {
    const all = [];
    for (let after = 0; ;) {
      const page = await api("GET", `/v1/jobs/${task.job_id}/events?after=${after}&limit=500`);
      all.push(...page.filter((e) => e.payload && e.payload.task_id === itemId));
      if (page.length < 500) break;
      after = page[page.length - 1].id;
    }
    $("#task-events").replaceChildren(...all.map((e) => el("li", { "data-event": e.event_type },
      el("strong", { text: e.event_type }), e.payload.error ? ` · error: ${e.payload.error}` : "", e.payload.attempt ? ` · attempt ${e.payload.attempt}` : "",
      el("br"), el("small", {}, `${when(e.created_at)} · by `, el("code", { text: e.actor }), " · trace ", traceLink(e.trace_id)))));
    const made = all.flatMap((e) => e.payload.artifacts || []);
    const artifacts = await Promise.all(made.map((a) => api("GET", `/v1/artifacts/${a.id}`).catch(() => null)));
    $("#task-artifacts").replaceChildren(...artifacts.filter(Boolean).map((a) => {
      const button = el("button", { type: "button", class: "download", text: `Download ${a.filename}` });
      button.addEventListener("click", () => downloadStored(`/v1/artifacts/${a.id}/download`, a.filename).catch((error) => showError("task-action-error", error)));
      return el("li", {}, `${a.kind} v${a.version} · ${a.size} bytes `, button);
    }));
    $("#task-artifacts-empty").hidden = made.length > 0;
  }
  async function watch() {
    try {
      await follow(`/v1/tasks/${itemId}/events`, async (_name, change) => {
        render(change);
        if (FINISHED.has(change.status)) { render(await api("GET", `/v1/tasks/${itemId}`)); await events(); }
      });
    } catch (error) { showError("task-action-error", error); }
  }
  $("#task-cancel").addEventListener("click", async () => {
    try { render(await api("POST", `/v1/tasks/${itemId}/cancel`)); await events(); } catch (error) { showError("task-action-error", error); }
  });
  $("#task-retry").addEventListener("click", async () => {
    try { render(await api("POST", `/v1/tasks/${itemId}/retry`)); await events(); watch(); } catch (error) { showError("task-action-error", error); }
  });
  (async () => {
    try { render(await api("GET", `/v1/tasks/${itemId}`)); }
    catch (error) { if (!notFound(error, "task", "/console/jobs")) showError("page-error", error); return; }
    try { await events(); } catch (error) { showError("page-error", error); }
    loaded();
    body.dataset.ready = "true";
    if (!FINISHED.has(task.status)) watch();
  })();
});

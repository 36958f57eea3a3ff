// genkeep console: plain JavaScript over the public API. The API key (when the server
// requires one) lives in sessionStorage, so it is forgotten when the tab closes.
"use strict";

const KEY = "genkeep-api-key";
const $ = (sel, root = document) => root.querySelector(sel);
const body = document.body;
const authRequired = body.dataset.authRequired === "true";
const itemId = body.dataset.itemId;

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Every call of the console goes through here: same endpoints, same auth as any client.
async function api(method, path, { json, headers = {}, raw = false } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    // The browser's "Failed to fetch" says nothing to a person: the request never got an answer.
    throw new Error("The server could not be reached: check the network connection (and that genkeep is running), then try again.");
  }
  if (!response.ok) {
    let problem = {};
    try { problem = await response.json(); } catch (e) { problem = { title: response.statusText }; }
    if (response.status === 401 && authRequired && body.dataset.page !== "login") {
      sessionStorage.removeItem(KEY);
      location.assign(`/console/login?next=${encodeURIComponent(location.pathname)}`);
    }
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

// A problem shown as a sentence next to what caused it.
function showError(id, error) {
  const el = typeof id === "string" ? document.getElementById(id) : id;
  if (!el) return;
  if (!error) { el.hidden = true; el.textContent = ""; return; }
  el.textContent = error instanceof ApiError ? problemSentence(error) : String(error.message || error);
  el.hidden = false;
}

// pydantic's wording is for developers: its links and prefixes go, its jargon is translated.
function plainMessage(message) {
  return String(message || "")
    .replace(/\s*\[?For further information visit https:\/\/errors\.pydantic\.dev\S*\]?/gi, "")
    .replace(/^(Value|Assertion) error, /, "");
}

function plainError(e) {
  const field = (e.loc || []).filter((x) => x !== "body" && x !== "query" && x !== "header").join(".");
  let text = plainMessage(e.msg);
  if (e.type === "missing") text = "is required";
  else if (e.type === "extra_forbidden") text = "is not a field this request takes";
  else if (/^Input should be None/.test(text)) text = "cannot be given together with the other fields";
  else if (e.type === "string_too_short") text = "is empty";
  return field ? `${field}: ${text}` : text;
}

function problemSentence(error) {
  const p = error.problem || {};
  let text = plainMessage(p.detail || p.title || error.message);
  if (Array.isArray(p.errors) && p.errors.length) text = p.errors.map(plainError).join("; ");
  else if (Array.isArray(p.detail)) text = p.detail.map(plainError).join("; ");
  return text;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// crypto.randomUUID needs a secure context; a console served over plain http has none.
const randomKey = () => [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

// The file's name as Content-Disposition gives it: RFC 6266's filename* (UTF-8) first.
function dispositionName(disposition, fallbackName) {
  const extended = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  if (extended) return decodeURIComponent(extended[1]);
  const plain = /filename="([^"]+)"/.exec(disposition);
  return plain ? plain[1] : fallbackName;
}

function save(href, name) {
  const a = el("a", { href, download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

// A file the API answered with itself (an export).
async function download(response, fallbackName) {
  const name = dispositionName(response.headers.get("Content-Disposition") || "", fallbackName);
  const url = URL.createObjectURL(await response.blob());
  save(url, name);
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return name;
}

// A stored file: the browser goes to its signed URL, which needs neither the API key nor
// CORS rules on an S3 or Azure bucket (fetching it from this page would need both).
async function downloadStored(path, name) {
  const signed = await api("GET", `${path}${path.includes("?") ? "&" : "?"}deliver=url`);
  save(signed.url, name);
  return name;
}

// A page with unsaved edits asks before it is left; ``unsaved`` says whether it has any.
function guardUnsaved(unsaved) {
  window.addEventListener("beforeunload", (event) => {
    if (!unsaved()) return;
    event.preventDefault();
    event.returnValue = "";
  });
}

// A submit button is off while its request is in flight, so a double-click sends it once.
async function busy(button, work) {
  button.disabled = true;
  try { return await work(); } finally { button.disabled = false; }
}

// An item page whose item the API does not know (or that is another owner's): the page's
// forms go, so nothing can be edited or submitted against it.
function notFound(error, what, listHref) {
  if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 422)) return false;
  document.title = "Not found · genkeep console";
  $("main").replaceChildren(
    el("h1", { text: "Not found" }),
    el("p", { id: "page-error", class: "error", role: "alert", text: `The ${what} ${itemId} was not found: it does not exist, or it is not yours.` }),
    el("p", {}, el("a", { href: listHref, text: `All ${what}s` })));
  return true;
}

// A list's search and page live in the address: a reload keeps them, Back returns to them.
function listState(defaults) {
  const params = new URLSearchParams(location.search);
  return Object.fromEntries(Object.entries(defaults).map(([name, value]) => [name, params.get(name) ?? value]));
}
function pushListState(state, defaults) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(state)) if (value !== null && String(value) !== String(defaults[name])) params.set(name, value);
  const query = params.toString();
  const url = location.pathname + (query ? `?${query}` : "");
  if (url !== location.pathname + location.search) history.pushState(null, "", url);
}

// ---- pages ----------------------------------------------------------------------------------

const pages = {};

pages.login = () => {
  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    sessionStorage.setItem(KEY, key);
    try {
      await api("GET", "/v1/prompts?limit=1");
      const next = new URLSearchParams(location.search).get("next") || "/console";
      location.assign(next.startsWith("/console") ? next : "/console");
    } catch (error) {
      sessionStorage.removeItem(KEY);
      showError("login-error", error);
    }
  });
};

pages.generate = () => {
  const form = $("#generate-form");
  // max-age means something only with its choice; elsewhere it is out of the way.
  const maxAgeChosen = () => { $("#max-age").disabled = $("#cache").value !== "max-age"; };
  $("#cache").addEventListener("change", maxAgeChosen);
  maxAgeChosen();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("prompt-error", null);
    const prompt = $("#prompt").value;
    const request = { prompt, profile: $("#profile").value || null };
    const cache = $("#cache").value;
    if (cache === "no-cache") request.cache = { no_cache: true };
    if (cache === "no-store") request.cache = { no_store: true };
    if (cache === "max-age") {
      // An empty field is not 0 (which would refuse every stored result).
      if ($("#max-age").value.trim() === "") { showError("prompt-error", "Give max-age in seconds, or choose another cache control."); $("#max-age").focus(); return; }
      request.cache = { max_age: Number($("#max-age").value) };
    }
    const button = $("#generate");
    button.disabled = true;
    try {
      const answer = await api("POST", "/v1/generate", { json: request });
      const outcome = answer.cached ? "cached" : answer.coalesced ? "coalesced" : "generated";
      $("#answer-outcome").textContent = outcome;
      $("#answer-outcome").dataset.outcome = outcome;
      $("#answer-version").textContent = answer.version ?? "not persisted";
      $("#answer-sha").textContent = answer.content_sha256;
      const link = $("#answer-prompt");
      link.hidden = !answer.prompt_id;
      if (answer.prompt_id) link.href = `/console/prompts/${answer.prompt_id}`;
      $("#answer-content").textContent = answer.content;
      $("#answer").hidden = false;
      // The button was disabled while in flight, which drops focus to the page's top: a
      // keyboard or screen-reader user goes on from the answer instead.
      $("#answer").focus();
    } catch (error) {
      showError("prompt-error", error);
      $("#prompt").focus();
    } finally {
      button.disabled = false;
    }
  });
};

pages.prompts = () => {
  const size = 20;
  const DEFAULTS = { q: "", offset: "0" };
  let offset = 0;
  function fromAddress() {
    const state = listState(DEFAULTS);
    $("#search").value = state.q;
    offset = Math.max(0, Number(state.offset) || 0);
  }
  fromAddress();
  window.addEventListener("popstate", () => { fromAddress(); load(); });
  const go = () => { pushListState({ q: $("#search").value.trim(), offset: String(offset) }, DEFAULTS); load(); };
  async function load() {
    showError("page-error", null);
    const q = encodeURIComponent($("#search").value.trim());
    try {
      const rows = await api("GET", `/v1/prompts?q=${q}&limit=${size + 1}&offset=${offset}`);
      const tbody = $("#prompt-table tbody");
      tbody.replaceChildren(
        ...rows.slice(0, size).map((p) =>
          el("tr", {},
            el("td", {}, el("a", { href: `/console/prompts/${p.id}`, text: p.prompt })),
            el("td", { text: p.profile }),
            el("td", { text: p.status }),
            el("td", { text: String(p.latest_version) }),
            el("td", { text: when(p.created_at) }))));
      // An empty list after a search is "nothing matches", not "nothing yet".
      const searched = $("#search").value.trim();
      $("#prompt-empty").hidden = rows.length > 0 || offset > 0 || searched !== "";
      $("#prompt-nomatch").hidden = rows.length > 0 || offset > 0 || searched === "";
      $("#prompt-nomatch").textContent = `No prompt matches “${searched}”.`;
      $("#prev").disabled = offset === 0;
      $("#next").disabled = rows.length <= size;
    } catch (error) {
      showError("page-error", error);
    }
  }
  $("#search-form").addEventListener("submit", (event) => { event.preventDefault(); offset = 0; go(); });
  $("#prev").addEventListener("click", () => { offset = Math.max(0, offset - size); go(); });
  $("#next").addEventListener("click", () => { offset += size; go(); });
  load();
};

// A line diff (longest common subsequence): enough for prompt-sized documents.
function lineDiff(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}

pages.prompt = () => {
  let prompt = null;
  let latest = null;
  // body[data-ready] tells a person's script (and the browser tests) the page is complete.
  async function load() {
    delete body.dataset.ready;
    try {
      prompt = await api("GET", `/v1/prompts/${itemId}`);
    } catch (error) {
      if (!notFound(error, "prompt", "/console/prompts")) showError("page-error", error);
      return;
    }
    $("#prompt-text").textContent = prompt.prompt;
    $("#prompt-status").textContent = prompt.status;
    $("#prompt-profile").textContent = prompt.profile;
    $("#versions tbody").replaceChildren(
      ...prompt.results.map((r) =>
        el("tr", { "data-version": String(r.version) },
          el("td", { text: String(r.version) + (r.id === prompt.latest_result_id ? " (latest)" : "") }),
          el("td", { text: r.source }),
          el("td", { text: r.model }),
          el("td", { text: when(r.created_at) }),
          el("td", {}, el("code", { text: r.content_sha256.slice(0, 16) + "…", title: r.content_sha256 })),
          el("td", {}, el("code", { text: r.id })))));
    for (const select of [$("#diff-a"), $("#diff-b")]) {
      select.replaceChildren(...prompt.results.map((r) => el("option", { value: r.id, text: `v${r.version} (${r.source})` })));
    }
    if (prompt.results.length > 1) $("#diff-a").selectedIndex = prompt.results.length - 2;
    $("#diff-b").selectedIndex = prompt.results.length - 1;
    if (prompt.latest_result_id) {
      latest = await api("GET", `/v1/results/${prompt.latest_result_id}`);
      $("#edit-content").value = latest.content;
      const page = await api("GET", `/v1/results/${latest.id}/preview`, { raw: true });
      $("#preview").srcdoc = await page.text();
    }
    body.dataset.ready = "true";
  }
  $("#regenerate").addEventListener("click", async () => {
    showError("regenerate-error", null);
    // A new generator call, which may be paid for: asked, not done on a stray click.
    if (!confirm("Regenerate this prompt? This calls the generator again (it may be paid for) and stores a new version.")) return;
    try { await api("POST", `/v1/prompts/${itemId}/regenerate`); await load(); }
    catch (error) { showError("regenerate-error", error); }
  });
  $("#edit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("edit-error", null);
    if (!latest) return;
    if ($("#edit-content").value === latest.content) {
      showError("edit-error", "Nothing changed: the content is the latest version's, so no new version is saved.");
      return;
    }
    try {
      await api("POST", `/v1/results/${latest.id}/edits`, { json: { content: $("#edit-content").value } });
      await load();
    } catch (error) { showError("edit-error", error); }
  });
  $("#diff-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("diff-error", null);
    let a, b;
    try {
      [a, b] = await Promise.all([
        api("GET", `/v1/results/${$("#diff-a").value}`),
        api("GET", `/v1/results/${$("#diff-b").value}`),
      ]);
    } catch (error) {
      $("#diff").replaceChildren();
      showError("diff-error", error);
      return;
    }
    if (a.content === b.content) {
      $("#diff").replaceChildren(el("span", { class: "same", text: "No difference: the two versions are identical." }));
      return;
    }
    $("#diff").replaceChildren(...lineDiff(a.content, b.content).map(([mark, line]) =>
      el("span", { class: mark === "+" ? "add" : mark === "-" ? "del" : "same", text: `${mark} ${line}\n` })));
  });
  for (const button of document.querySelectorAll("button.export")) {
    button.addEventListener("click", async () => {
      showError("export-error", null);
      if (!latest) return;
      try {
        const response = await api("POST", "/v1/export", { json: { result_id: latest.id, format: button.dataset.format }, raw: true });
        $("#export-result").textContent = response.headers.get("X-Genkeep-Result-Id") || "";
        // The downloaded file's hash, to check it by; the stored content's is another one.
        $("#export-sha").textContent = response.headers.get("X-Genkeep-File-Sha256") || "";
        $("#export-content-sha").textContent = response.headers.get("X-Genkeep-Content-Sha256") || "";
        $("#export-file").textContent = await download(response, `export.${button.dataset.format}`);
        $("#export-facts").hidden = false;
      } catch (error) { showError("export-error", error); }
    });
  }
  load();
};

pages.jobs = () => {
  const size = 20;
  const DEFAULTS = { cursor: "" };
  let cursor = null;
  const fromAddress = () => { cursor = listState(DEFAULTS).cursor || null; };
  fromAddress();
  window.addEventListener("popstate", () => { fromAddress(); load(); });
  const go = () => { pushListState({ cursor: cursor || "" }, DEFAULTS); load(); };
  async function load() {
    try {
      const page = await api("GET", `/v1/jobs?limit=${size}` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""));
      $("#job-table tbody").replaceChildren(...page.items.map((j) =>
        el("tr", {},
          el("td", {}, el("a", { href: `/console/jobs/${j.id}`, text: j.title })),
          el("td", { text: String(j.sections.length) }),
          el("td", { text: `${j.sections_confirmed ? "confirmed" : "not confirmed"}${j.schema_dirty ? ", schema dirty" : ""}` }),
          el("td", { text: String(j.version) }),
          el("td", { text: when(j.created_at) }))));
      $("#job-empty").hidden = page.items.length > 0 || cursor !== null;
      $("#first").disabled = cursor === null;
      $("#next").disabled = !page.next_cursor;
      $("#next").dataset.cursor = page.next_cursor || "";
    } catch (error) { showError("page-error", error); }
  }
  $("#job-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("job-error", null);
    const title = $("#job-title").value.trim();
    try {
      const job = await api("POST", "/v1/jobs", { json: title ? { title } : {} });
      location.assign(`/console/jobs/${job.id}`);
    } catch (error) { showError("job-error", error); }
  });
  $("#first").addEventListener("click", () => { cursor = null; go(); });
  $("#next").addEventListener("click", () => { cursor = $("#next").dataset.cursor || null; go(); });
  load();
};

// Server-Sent Events read with fetch, so the stream carries the same Authorization header.
// A 204 means the stream has nothing more to send (a finished task, a stopped run).
async function follow(path, onEvent, { lastEventId = null, signal = null } = {}) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId !== null) headers["Last-Event-ID"] = String(lastEventId);
  const response = await api("GET", path, { raw: true, headers });
  if (response.status === 204 || !response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    if (signal && signal.aborted) { reader.cancel(); return; }
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      const name = (block.split("\n").find((l) => l.startsWith("event:")) || "event: message").slice(6).trim();
      if (signal && signal.aborted) { reader.cancel(); return; }
      if (data) {
        let parsed;
        try { parsed = JSON.parse(data); } catch (e) { continue; } // not JSON: ignore
        await onEvent(name, parsed);
      }
    }
  }
}

const FINISHED = new Set(["completed", "failed", "cancelled"]);

pages.job = () => {
  let job = null;
  const followed = new Set();

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
    $("#gate-confirmed").textContent = job.sections_confirmed ? "sections confirmed" : "sections not confirmed";
    $("#gate-confirmed").dataset.state = job.sections_confirmed ? "ok" : "open";
    $("#gate-schema").textContent = job.schema_dirty ? "schema dirty" : "schema clean";
    $("#sections").replaceChildren(...job.sections.map(sectionEditor));
    $("#schema").value = job.current_schema ? JSON.stringify(job.current_schema, null, 2) : "";
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
  let lastEvent = 0;
  let eventsRead = Promise.resolve();
  function loadEvents() {
    // One reader at a time: two overlapping reads from one position would show events twice.
    eventsRead = eventsRead.catch(() => {}).then(readNewEvents);
    return eventsRead;
  }
  async function readNewEvents() {
    for (;;) {
      const events = await api("GET", `/v1/jobs/${itemId}/events?after=${lastEvent}&limit=${EVENT_PAGE}`);
      $("#events").append(...events.map((e) =>
        el("li", {},
          el("strong", { text: e.event_type }), ` · ${when(e.created_at)} · actor `,
          el("code", { text: e.actor }), " · trace ", el("code", { text: e.trace_id }))));
      if (events.length) lastEvent = events[events.length - 1].id;
      const taskIds = [...new Set(events.filter((e) => e.event_type === "task.queued").map((e) => e.payload.task_id))];
      for (const id of taskIds) if (!document.getElementById(`task-${id}`)) await addTask(id);
      if (events.length < EVENT_PAGE) return;
    }
  }

  function taskRow(task) {
    // data-label: on a phone each row is a card, and each cell says what it is.
    const row = document.getElementById(`task-${task.id}`) || el("tr", { id: `task-${task.id}` },
      el("td", { "data-label": "Task" }, el("code", { text: task.id.slice(0, 8) }), ` ${task.kind}`),
      el("td", { class: "status", "data-label": "Status" }), el("td", { class: "stage", "data-label": "Stage" }),
      el("td", { "data-label": "Progress" }, el("progress", { max: "1", value: "0", "aria-label": `progress of task ${task.id.slice(0, 8)}` })),
      el("td", { class: "actions", "data-label": "Actions" }), el("td", { class: "result", "data-label": "Result" }));
    if (task.kind) row.dataset.kind = task.kind; // a change event carries no kind
    row.querySelector(".result").replaceChildren(...taskLinks({ ...task, kind: row.dataset.kind }));
    row.querySelector(".status").textContent = task.status + (task.error ? `: ${task.error}` : "");
    row.querySelector(".stage").textContent = task.stage || "";
    row.querySelector("progress").value = task.progress;
    row.dataset.status = task.status;
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

  async function addTask(id) {
    const task = await api("GET", `/v1/tasks/${id}`);
    $("#tasks tbody").prepend(taskRow(task));
    if (!FINISHED.has(task.status)) watch(id);
  }

  async function loadArtifacts() {
    const artifacts = await api("GET", `/v1/jobs/${itemId}/artifacts`);
    const kinds = [...new Set(artifacts.map((a) => a.kind))];
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
          return el("li", { "data-version": String(a.version) },
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
  // One form per kind the API accepts; a kind without a form takes its payload as JSON.
  function showKind() {
    const kind = $("#task-kind").value;
    const known = [...document.querySelectorAll("#task-form fieldset.kind")].map((f) => f.dataset.kind);
    for (const box of document.querySelectorAll("#task-form fieldset.kind")) {
      box.hidden = box.dataset.kind !== (known.includes(kind) ? kind : "other");
    }
  }
  function number(id) { return $(id).value === "" ? undefined : Number($(id).value); }
  function payloadOf(kind) {
    if (kind === "export") {
      const payload = { formats: [...document.querySelectorAll('#task-form input[name="format"]:checked')].map((i) => i.value) };
      const source = $("#export-source").value;
      if (source !== "sections") payload[source] = $("#export-source-id").value.trim();
      if ($("#export-title").value.trim()) payload.title = $("#export-title").value.trim();
      return payload;
    }
    if (kind === "generate") {
      return { prompt: $("#task-prompt").value, profile: $("#task-profile").value || undefined };
    }
    if (kind === "extract") {
      return {
        text: $("#task-text").value, ontology: $("#task-ontology").value,
        ontology_name: $("#task-ontology-name").value || undefined, input_name: $("#task-input-name").value || undefined,
        chunk_size: number("#task-chunk-size"), overlap: number("#task-overlap"), batch_size: number("#task-batch-size"),
      };
    }
    try { return JSON.parse($("#task-payload").value || "{}"); }
    catch (error) { throw new Error(`The payload is not valid JSON: ${error.message}`); }
  }
  // What the worker would refuse only after queueing it is refused here, before submission.
  async function checkedPayload(kind) {
    const payload = payloadOf(kind);
    if (kind === "export") {
      if (!payload.formats.length) throw new Error("Choose at least one format to export.");
      const source = $("#export-source").value;
      if (source !== "sections") {
        const id = payload[source];
        const what = source === "prompt_id" ? "prompt" : "result";
        if (!id) throw new Error(`Give the id of the ${what} to export.`);
        try { await api("GET", `/v1/${what}s/${encodeURIComponent(id)}`); }
        catch (error) {
          if (error.status === 404 || error.status === 422) throw new Error(`There is no ${what} with the id ${id}.`);
          throw error;
        }
      } else if (job && !job.sections.length) {
        throw new Error("The job has no sections to export: add and save one first.");
      }
    }
    if (kind === "generate" && !payload.prompt.trim()) throw new Error("The prompt to generate is empty.");
    if (kind === "extract") {
      if (!payload.text.trim()) throw new Error("The text to extract from is empty.");
      if (!payload.ontology.trim()) throw new Error("The ontology to extract with is empty.");
    }
    return payload;
  }
  $("#task-kind").addEventListener("change", showKind);
  $("#export-source").addEventListener("change", () => { $("#export-source-id").disabled = $("#export-source").value === "sections"; });
  $("#task-samples").addEventListener("click", async () => {
    const [text, ontology] = await Promise.all(["text", "ontology"].map(async (name) => (await fetch(`/console/samples/${name}`)).text()));
    $("#task-text").value = text;
    $("#task-ontology").value = ontology;
    $("#task-ontology-name").value = "ontology.ttl";
    $("#task-input-name").value = "text.md";
  });
  // One key per intended submission: a repeat of the same form (a double-click, even one whose
  // second click comes after the first answer; a retry after a lost answer) is the same task.
  // An edit of the form, or a few seconds, make the next click a new submission.
  const REPEAT_MS = 3000;
  let submissionKey = null;
  $("#task-form").addEventListener("input", () => { submissionKey = null; });
  $("#task-form").addEventListener("change", () => { submissionKey = null; });
  $("#task-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#submit-task");
    if (button.disabled) return;
    showError("task-error", null);
    const kind = $("#task-kind").value;
    submissionKey = submissionKey || randomKey();
    await busy(button, async () => {
      try {
        const payload = await checkedPayload(kind);
        const task = await api("POST", `/v1/jobs/${itemId}/tasks`, {
          json: { kind, payload },
          headers: { "Idempotency-Key": submissionKey },
        });
        const sent = submissionKey;
        setTimeout(() => { if (submissionKey === sent) submissionKey = null; }, REPEAT_MS);
        if (!document.getElementById(`task-${task.id}`)) $("#tasks tbody").prepend(taskRow(task));
        watch(task.id);
        loadEvents();
      } catch (error) { showError("task-error", error); }
    });
  });
  showKind();

  (async () => {
    try { await loadJob(); await loadEvents(); await loadArtifacts(); }
    catch (error) { if (!notFound(error, "job", "/console/jobs")) showError("page-error", error); }
  })();
};

function runFacts(run, started) {
  const parts = [`${run.batches_done} of ${run.total_batches} batches`, `${run.entities_found} entities`];
  if (run.batches_failed) parts.push(`${run.batches_failed} failed`);
  if (started && run.status === "running" && run.batches_done > started.done) {
    const seconds = (Date.now() - started.at) / 1000;
    const rate = (run.batches_done - started.done) / seconds;
    parts.push(`${rate.toFixed(2)} batches/s`);
    if (rate > 0) parts.push(`about ${Math.ceil((run.total_batches - run.batches_done) / rate)} s left`);
  }
  return parts.join(" · ");
}

pages.runs = () => {
  async function readFile(input, target, nameTarget) {
    const file = input.files[0];
    showError("run-error", null);
    if (!file) return;
    const text = await file.text();
    // An image or other binary file would be dumped into the box as noise.
    if (/^(image|audio|video)\//.test(file.type) || text.includes("\u0000") || text.includes("\uFFFD")) {
      input.value = "";
      showError("run-error", `${file.name} is not a text file: choose a text file (for an ontology, Turtle, RDF/XML or OWL).`);
      return;
    }
    $(target).value = text;
    if (nameTarget) $(nameTarget).value = file.name;
  }
  let inputName = "input.txt";
  $("#text-file").addEventListener("change", () => { inputName = ($("#text-file").files[0] || {}).name || inputName; readFile($("#text-file"), "#run-text"); });
  $("#ontology-file").addEventListener("change", () => readFile($("#ontology-file"), "#run-ontology", "#ontology-name"));
  $("#use-samples").addEventListener("click", async () => {
    const [text, ontology] = await Promise.all(["text", "ontology"].map(async (name) => (await fetch(`/console/samples/${name}`)).text()));
    $("#run-text").value = text;
    $("#run-ontology").value = ontology;
    $("#ontology-name").value = "ontology.ttl";
    inputName = "text.md";
  });
  $("#run-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("run-error", null);
    const request = { text: $("#run-text").value, ontology: $("#run-ontology").value, ontology_name: $("#ontology-name").value || "ontology.ttl", input_name: inputName };
    for (const [field, id] of [["chunk_size", "#chunk-size"], ["overlap", "#overlap"], ["batch_size", "#batch-size"]]) {
      if ($(id).value !== "") request[field] = Number($(id).value);
    }
    const button = $("#start-run");
    if (button.disabled) return;
    button.disabled = true;
    try {
      const run = await api("POST", "/v1/runs", { json: request });
      location.assign(`/console/runs/${run.id}`); // the button stays off: the page is leaving
    } catch (error) { showError("run-error", error); button.disabled = false; }
  });
  const size = 20;
  const DEFAULTS = { offset: "0" };
  let offset = 0;
  const fromAddress = () => { offset = Math.max(0, Number(listState(DEFAULTS).offset) || 0); };
  fromAddress();
  window.addEventListener("popstate", () => { fromAddress(); load(); });
  const go = () => { pushListState({ offset: String(offset) }, DEFAULTS); load(); };
  async function load() {
    try {
      const rows = await api("GET", `/v1/runs?limit=${size + 1}&offset=${offset}`);
      const runs = rows.slice(0, size);
      $("#run-table tbody").replaceChildren(...runs.map((r) =>
        el("tr", {},
          el("td", {}, el("a", { href: `/console/runs/${r.id}`, text: `${r.input_name} · ${r.id.slice(0, 8)}` })),
          el("td", { text: r.status }),
          el("td", {}, el("progress", { max: "1", value: String(r.progress), "aria-label": `progress of run ${r.id.slice(0, 8)}` })),
          el("td", { text: String(r.entities_found) }),
          el("td", { text: when(r.created_at) }))));
      $("#run-empty").hidden = runs.length > 0 || offset > 0;
      $("#prev").disabled = offset === 0;
      $("#next").disabled = rows.length <= size;
    } catch (error) { showError("page-error", error); }
  }
  $("#prev").addEventListener("click", () => { offset = Math.max(0, offset - size); go(); });
  $("#next").addEventListener("click", () => { offset += size; go(); });
  load();
};

// A stable colour per class, so the legend and the marks agree.
function classColour(iri) {
  let hash = 0;
  for (const ch of iri) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 70% 82%)`;
}
const shortIri = (iri) => iri.replace(/^.*[#/]/, "");

// A stored file this page shows: through the API, so the object store needs no CORS rules.
async function fetchDocument(path) {
  const separator = path.includes("?") ? "&" : "?";
  return (await api("GET", `${path}${separator}deliver=content`, { raw: true })).text();
}

pages.run = () => {
  let started = null;
  let shown = false;
  let lastSeq = null;
  let stream = null; // the AbortController of the open event stream

  // ``run`` is the run (GET) or one of its change events: both carry status and counts.
  function render(run) {
    if (run.input_name) $("#run-name").textContent = run.input_name;
    if (!started || run.status !== "running") started = { at: Date.now(), done: run.batches_done };
    $("#run-status").textContent = run.status;
    body.dataset.runStatus = run.status;
    $("#run-progress").value = run.progress;
    $("#run-facts").textContent = runFacts(run, started);
    $("#cancel-run").disabled = run.status !== "running" || run.cancel_requested;
    $("#resume-run").disabled = run.status === "running" || run.status === "completed";
  }

  async function completed() {
    if (shown) return;
    shown = true;
    await showResults(await api("GET", `/v1/runs/${itemId}`)); // the outputs: read once
  }

  // Progress is pushed: the run's event stream (SSE), from the change log in the database,
  // so a run that a worker process executes shows here too. No polling; the stream ends
  // when the run stops, and Resume opens a new one after the last event seen.
  async function live() {
    if (stream) stream.abort();
    const controller = new AbortController();
    stream = controller;
    try {
      await follow(`/v1/runs/${itemId}/events`, async (_name, change) => {
        lastSeq = change.seq;
        body.dataset.runEvents = String(Number(body.dataset.runEvents || "0") + 1);
        render(change);
        if (change.status === "completed") await completed();
      }, { lastEventId: lastSeq, signal: controller.signal });
    } catch (error) { showError("page-error", error); }
  }

  async function load() {
    try {
      const run = await api("GET", `/v1/runs/${itemId}`);
      render(run);
      if (run.status === "completed") { shown = true; await showResults(run); return; }
      if (run.status !== "cancelled" && run.status !== "failed") live(); // else: until Resume
    } catch (error) { if (!notFound(error, "run", "/console/runs")) showError("page-error", error); }
  }

  async function showResults(run) {
    const validation = run.outputs.validation;
    $("#validation").textContent = validation.conforms ? "The graph conforms to the ontology." : "The graph does not conform to the ontology:";
    $("#validation-problems").replaceChildren(...validation.problems.map((p) => el("li", { text: typeof p === "string" ? p : JSON.stringify(p) })));
    const [text, jsonl, jsonld] = await Promise.all([
      fetchDocument(`/v1/runs/${itemId}/input`),
      fetchDocument(`/v1/runs/${itemId}/graph?format=jsonl`),
      fetchDocument(`/v1/runs/${itemId}/graph?format=jsonld`),
    ]);
    const mentions = jsonl.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    // Offsets count code points; Array.from splits the text the same way.
    const chars = Array.from(text);
    const sorted = [...mentions].sort((a, b) => a.start - b.start || b.end - a.end);
    const parts = [];
    let at = 0;
    for (const m of sorted) {
      if (m.start < at) continue; // overlapping mention: the outer one is shown
      parts.push(chars.slice(at, m.start).join(""));
      parts.push(el("mark", { "data-class": m.class, title: shortIri(m.class), style: `background:${classColour(m.class)}`, text: chars.slice(m.start, m.end).join("") }));
      at = m.end;
    }
    parts.push(chars.slice(at).join(""));
    $("#source").replaceChildren(...parts);
    $("#source").dataset.mentions = String(mentions.length);
    const classes = [...new Set(mentions.map((m) => m.class))];
    $("#legend").replaceChildren(...classes.map((c) => el("mark", { "data-class": c, style: `background:${classColour(c)}`, text: shortIri(c) })));
    const byEntity = new Map();
    for (const m of mentions) {
      const entry = byEntity.get(m.entity) || { surface: m.surface, class: m.class, count: 0 };
      entry.count += 1;
      byEntity.set(m.entity, entry);
    }
    $("#entities tbody").replaceChildren(...[...byEntity].map(([iri, e]) =>
      el("tr", {}, el("td", { text: e.surface }), el("td", { text: shortIri(e.class) }), el("td", { text: String(e.count) }), el("td", {}, el("code", { text: iri })))));
    const labels = new Map();
    const relations = [];
    for (const node of JSON.parse(jsonld)["@graph"] || []) {
      if (node["rdfs:label"]) labels.set(node["@id"], node["rdfs:label"]);
      for (const [key, value] of Object.entries(node)) {
        if (!key.startsWith("@") && key !== "rdfs:label" && value && value["@id"]) relations.push([node["@id"], key, value["@id"]]);
      }
    }
    $("#relations tbody").replaceChildren(...relations.map(([s, p, o]) =>
      el("tr", {}, el("td", { text: labels.get(s) || s }), el("td", { text: shortIri(p) }), el("td", { text: labels.get(o) || o }))));
    $("#run-results").hidden = false;
  }

  $("#cancel-run").addEventListener("click", async () => {
    showError("run-action-error", null);
    try {
      const run = await api("POST", `/v1/runs/${itemId}/cancel`);
      // The stream may have shown the run stopped before this answer arrived (NOTIFY is
      // quick): the answer is older then, and must not put "running" back.
      if (!FINISHED.has(body.dataset.runStatus)) render(run);
    } catch (error) { showError("run-action-error", error); }
    body.dataset.cancelAnswered = "true";
  });
  $("#resume-run").addEventListener("click", async () => {
    showError("run-action-error", null);
    try { started = null; render(await api("POST", `/v1/runs/${itemId}/resume`)); live(); } catch (error) { showError("run-action-error", error); }
  });
  for (const button of document.querySelectorAll("button.graph")) {
    button.addEventListener("click", async () => {
      try {
        const name = { turtle: "graph.ttl", jsonld: "graph.jsonld", jsonl: "extractions.jsonl" }[button.dataset.format];
        await downloadStored(`/v1/runs/${itemId}/graph?format=${button.dataset.format}`, name);
      } catch (error) { showError("run-action-error", error); }
    });
  }
  load();
};

const COUNTERS = [
  ["genkeep_generator_calls_total", "Generator calls"],
  ["genkeep_cache_hits_total", "Cache hits"],
  ["genkeep_coalesced_waiters_total", "Coalesced waiters"],
  ["genkeep_lease_takeovers_total", "Lease takeovers"],
  ["genkeep_persistence_failures_total", "Persistence failures"],
];

// The Prometheus text format: "name{labels} value" lines; comments start with #.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match) samples.push({ name: match[1], labels: match[2] || "", value: Number(match[3]) });
  }
  return samples;
}

const TASK_STATUSES = ["queued", "running", "completed", "failed", "cancelled"];

pages.ops = () => {
  async function probe(path, target) {
    try {
      const response = await fetch(path);
      const answer = await response.json();
      $(target).textContent = `${response.status} ${answer.status}${answer.reason ? `: ${answer.reason}` : ""}`;
    } catch (error) { $(target).textContent = `unreachable (${error.message})`; }
  }
  async function metrics() {
    const samples = parseMetrics(await (await fetch("/metrics")).text());
    const rows = [];
    for (const [name, label] of COUNTERS) {
      const found = samples.filter((s) => s.name === name);
      if (!found.length) rows.push(el("tr", {}, el("td", { text: label }), el("td"), el("td", { text: "0" })));
      for (const s of found) rows.push(el("tr", { "data-metric": name }, el("td", { text: label }), el("td", {}, el("code", { text: s.labels })), el("td", { text: String(s.value) })));
    }
    $("#counters tbody").replaceChildren(...rows);
    // genkeep_tasks{status="..."}: read from the database at this scrape, every owner's tasks.
    const depth = new Map(samples.filter((s) => s.name === "genkeep_tasks").map((s) => [/status="([^"]*)"/.exec(s.labels)[1], s.value]));
    $("#queue tbody").replaceChildren(...TASK_STATUSES.map((status) =>
      el("tr", { "data-status": status }, el("td", { text: status }), el("td", { text: depth.has(status) ? String(depth.get(status)) : "unknown" }))));
    $("#queue-unknown").hidden = depth.size > 0;
  }
  // The owner's own duplicate prompts, through the API with the same key as every call.
  async function duplicates() {
    showError("duplicates-error", null);
    const found = await api("GET", "/v1/prompts/duplicates");
    $("#duplicates-none").hidden = found.length > 0;
    $("#duplicates").hidden = found.length === 0;
    $("#duplicates tbody").replaceChildren(...found.map((d) =>
      el("tr", { "data-hash": d.normalized_hash },
        el("td", {}, el("code", { text: d.normalized_hash.slice(0, 12) + "…", title: d.normalized_hash })),
        el("td", {}, el("code", { text: d.profile_key.slice(0, 12), title: d.profile_key })),
        el("td", { text: String(d.count) }),
        el("td", {}, ...d.prompt_ids.flatMap((id, i) => [i ? ", " : "", el("a", { href: `/console/prompts/${id}`, text: id.slice(0, 8) })])))));
  }
  async function load() {
    delete body.dataset.ready;
    await Promise.all([probe("/healthz", "#healthz"), probe("/readyz", "#readyz")]);
    try { await metrics(); } catch (error) { showError("page-error", error); }
    try { await duplicates(); } catch (error) { showError("duplicates-error", error); }
    body.dataset.ready = "true";
  }
  $("#refresh").addEventListener("click", load);
  load();
};

// ---- start ----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  if (authRequired && body.dataset.page !== "login" && !sessionStorage.getItem(KEY)) {
    location.assign(`/console/login?next=${encodeURIComponent(location.pathname)}`);
    return;
  }
  const signOut = $("#sign-out");
  if (signOut) signOut.addEventListener("click", () => { sessionStorage.removeItem(KEY); location.assign("/console/login"); });
  $("#who").textContent = authRequired ? (sessionStorage.getItem(KEY) ? "signed in with an API key" : "") : "default owner";
  const start = pages[body.dataset.page];
  if (start) start();
});

// genkeep console: plain JavaScript over the public API. The API key (when the server
// requires one) lives in sessionStorage, so it is forgotten when the tab closes; a new tab
// asks the open tabs for it over a BroadcastChannel (same origin, memory only), and
// localStorage holds it only when the person ticked "Remember on this device".
"use strict";

const KEY = "genkeep-api-key";
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("genkeep-console") : null;
const storedKey = () => sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
function forgetKey() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}
if (tabs) {
  tabs.addEventListener("message", (event) => {
    const message = event.data || {};
    // A tab of this console opened without the key asks; a tab that has one answers.
    if (message.type === "ask" && storedKey()) tabs.postMessage({ type: "key", key: storedKey() });
    // "Forget key" in one tab forgets it in every tab.
    if (message.type === "forget") { forgetKey(); if (authRequired) location.assign("/console/login"); }
  });
}
// The key from another open tab, or null after a short wait when no tab has one.
function keyFromOtherTab() {
  if (!tabs) return Promise.resolve(null);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { tabs.removeEventListener("message", answer); resolve(null); }, 400);
    function answer(event) {
      if ((event.data || {}).type !== "key") return;
      clearTimeout(timer);
      tabs.removeEventListener("message", answer);
      resolve(event.data.key);
    }
    tabs.addEventListener("message", answer);
    tabs.postMessage({ type: "ask" });
  });
}
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
  const key = storedKey();
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
      forgetKey();
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

// On a phone every table's rows are cards: each cell says what it is (its column's name), for
// rows rendered now and later.
function labelTableCells() {
  for (const table of document.querySelectorAll("table")) {
    const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    const tbody = table.tBodies[0];
    if (!tbody) continue;
    const label = () => {
      for (const row of tbody.rows) {
        [...row.cells].forEach((cell, i) => { if (!cell.dataset.label && names[i] && cell.colSpan === 1) cell.dataset.label = names[i]; });
      }
    };
    label();
    new MutationObserver(label).observe(tbody, { childList: true });
  }
}

// Until its data arrives a page shows placeholders and its data buttons are off: nothing
// looks empty, and nothing acts on a job or prompt not yet read.
function loaded(scope = document) {
  for (const button of scope.querySelectorAll("[data-needs-data]")) button.disabled = false;
  for (const table of scope.querySelectorAll("[aria-busy]")) table.removeAttribute("aria-busy");
  for (const row of scope.querySelectorAll("tr.placeholder")) row.remove();
  body.dataset.loaded = "true";
}

// A state at a glance: a coloured pill whose icon (CSS, by data-state) goes with the word,
// so the state is not told by colour alone and the text stays the state's name.
const PROMPT_STATES = { ready: "completed", generating: "running", pending: "queued", failed: "failed" };
function pill(state, text = state) {
  return el("span", { class: "pill", "data-state": state, text });
}
function setPill(node, state, text = state) {
  node.textContent = text;
  node.classList.add("pill");
  node.dataset.state = state;
}

// A trace id, linked to the trace viewer when GENKEEP_TRACE_URL is set.
function traceLink(traceId) {
  const template = body.dataset.traceUrl;
  if (!traceId) return el("span", { text: "" });
  if (!template) return el("code", { text: traceId });
  return el("a", { href: template.replace("{trace_id}", encodeURIComponent(traceId)), class: "trace", target: "_blank", rel: "noopener noreferrer" }, el("code", { text: traceId }));
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
// The other parameters of the address stay (a job page's tab and its task filters).
function pushListState(state, defaults, { replace = false } = {}) {
  const params = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(state)) {
    if (value === null || String(value) === String(defaults[name])) params.delete(name);
    else params.set(name, value);
  }
  const query = params.toString();
  const url = location.pathname + (query ? `?${query}` : "");
  if (url === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
}

// WAI-ARIA tabs (automatic activation): one panel shown at a time; Left and Right arrows,
// Home and End move between the tabs and show theirs. The tab is in the address (?tab=), so
// a reload or a shared link opens it; a click adds a Back step, an arrow key replaces the
// step (browsing the tabs by keyboard does not fill the history). ``reveal`` shows the tab
// whose panel holds an element (a link to an artifact from the audit log). ``implied`` names
// the tab an address without one means (a link with a task filter: the tasks).
function tabsOf(list, implied = () => null) {
  const tabs = [...list.querySelectorAll('[role="tab"]')];
  const names = tabs.map((tab) => tab.dataset.tab);
  function show(name, focus = false) {
    const chosen = names.includes(name) ? name : names[0];
    for (const tab of tabs) {
      const on = tab.dataset.tab === chosen;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
      if (on && focus) tab.focus();
    }
    body.dataset.tab = chosen;
  }
  function choose(name, { focus = false, replace = false } = {}) {
    show(name, focus);
    // The tab's name leaves the address only where the address means that tab anyway.
    pushListState({ tab: name }, { tab: implied() || names[0] }, { replace });
  }
  list.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) choose(tab.dataset.tab);
  });
  list.addEventListener("keydown", (event) => {
    const at = tabs.indexOf(document.activeElement);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (at < 0 || to === undefined) return;
    event.preventDefault();
    choose(names[(to + tabs.length) % tabs.length], { focus: true, replace: true });
  });
  const fromAddress = () => show(new URLSearchParams(location.search).get("tab") || implied() || names[0]);
  window.addEventListener("popstate", fromAddress);
  fromAddress();
  return {
    reveal(element) {
      const panel = element && element.closest('[role="tabpanel"]');
      if (panel && panel.hidden) choose(tabs.find((tab) => tab.getAttribute("aria-controls") === panel.id).dataset.tab);
    },
  };
}

// ---- pages ----------------------------------------------------------------------------------

const pages = {};

pages.login = () => {
  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    sessionStorage.setItem(KEY, key);
    try {
      await api("GET", "/v1/me");
      if ($("#remember").checked) localStorage.setItem(KEY, key);
      const next = new URLSearchParams(location.search).get("next") || "/console";
      location.assign(next.startsWith("/console") ? next : "/console");
    } catch (error) {
      forgetKey();
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
            el("td", {}, pill(PROMPT_STATES[p.status] || p.status, p.status)),
            el("td", { text: String(p.latest_version) }),
            el("td", { text: when(p.created_at) }))));
      // An empty list after a search is "nothing matches", not "nothing yet".
      const searched = $("#search").value.trim();
      $("#prompt-empty").hidden = rows.length > 0 || offset > 0 || searched !== "";
      $("#prompt-nomatch").hidden = rows.length > 0 || offset > 0 || searched === "";
      $("#prompt-nomatch").textContent = `No prompt matches “${searched}”.`;
      $("#prev").disabled = offset === 0;
      $("#next").disabled = rows.length <= size;
      loaded();
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
    loaded();
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
          el("td", {}, pill(j.sections_confirmed ? "ok" : "open", j.sections_confirmed ? "confirmed" : "not confirmed"), j.schema_dirty ? " " : "", j.schema_dirty ? pill("dirty", "schema dirty") : ""),
          el("td", { text: String(j.version) }),
          el("td", { text: when(j.created_at) }))));
      $("#job-empty").hidden = page.items.length > 0 || cursor !== null;
      $("#first").disabled = cursor === null;
      $("#next").disabled = !page.next_cursor;
      $("#next").dataset.cursor = page.next_cursor || "";
      loaded();
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
    const entry = auditEntry(e);
    // Nearly always the newest: appended; a late one goes before the first newer one.
    let at = seenEvents.length;
    while (at > 0 && seenEvents[at - 1] > e.id) at -= 1;
    const next = at < seenEvents.length ? document.querySelector(`#events li[data-id="${seenEvents[at]}"]`) : null;
    seenEvents.splice(at, 0, e.id);
    $("#events").insertBefore(entry, next);
    if (at === seenEvents.length - 1) lastEntry = e;
  }

  // One audit entry in words: what changed, which task (its kind), its error, its artifacts.
  function auditEntry(e) {
    const p = e.payload || {};
    const what = [];
    if (e.event_type === "job.created" && p.title) what.push(`“${p.title}”`);
    if (e.event_type === "job.updated") {
      const changes = Object.entries(p.changes || {});
      for (const [field, c] of changes) {
        const name = field.replace(/_/g, " ");
        if (c.changed) what.push(`${name} changed`);
        else if (c.unit) what.push(`${name}: ${c.from} → ${c.to} ${c.unit}`);
        else what.push(`${name}: ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)}`);
      }
      if (!changes.length && p.fields) what.push(p.fields.length ? `saved ${p.fields.join(", ").replace(/_/g, " ")} (no change)` : "no change");
    }
    const detail = el("span", { class: "what", text: what.join("; ") });
    const extra = [];
    if (p.task_id) {
      const kind = p.kind || taskKinds.get(p.task_id) || "task";
      extra.push(" · ", el("a", { href: `/console/tasks/${p.task_id}`, "data-kind": kind, text: `${kind} task ${p.task_id.slice(0, 8)}` }));
    }
    if (p.attempt) extra.push(` · attempt ${p.attempt}`);
    if (p.error) extra.push(" · ", el("span", { class: "error-text", text: `error: ${p.error}` }));
    for (const a of p.artifacts || []) {
      const link = el("a", { href: `#artifact-${a.id}`, class: "artifact-link", text: `${a.kind} v${a.version}` });
      // The artifact is on the Artifacts tab: that tab opens, and the artifact has the focus.
      link.addEventListener("click", (event) => {
        const target = document.getElementById(`artifact-${a.id}`);
        if (!target) return;
        event.preventDefault();
        tabs.reveal(target);
        target.focus();
      });
      extra.push(" · ", link);
    }
    return el("li", { "data-event": e.event_type, "data-id": String(e.id) },
      el("strong", { text: e.event_type }), what.length ? " · " : "", detail, ...extra,
      el("br"), el("small", {}, `${when(e.created_at)} · by `, el("code", { text: e.actor }), " · trace ", traceLink(e.trace_id)));
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
        showTasksEmpty();
        overview();
        watch(task.id);
        loadEvents();
      } catch (error) { showError("task-error", error); }
    });
  });
  showKind();

  (async () => {
    try { await loadJob(); await loadEvents(); await loadArtifacts(); loaded(); showTasksEmpty(); }
    catch (error) { if (!notFound(error, "job", "/console/jobs")) showError("page-error", error); }
  })();
};

// How long something took, in words a person reads at a glance.
function took(fromIso, toIso) {
  if (!fromIso || !toIso) return "";
  const seconds = (new Date(toIso) - new Date(fromIso)) / 1000;
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

// A task's own page: its status and attempts, where and when it ran, its error, payload,
// artifacts and audit events; live while it runs.
pages.task = () => {
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
  // Linkable filters: ?status=failed&extractor=ner&offset=20 is kept by Back and reload.
  const DEFAULTS = { status: "", extractor: "", offset: "0" };
  let offset = 0;
  const fromAddress = () => {
    const state = listState(DEFAULTS);
    offset = Math.max(0, Number(state.offset) || 0);
    $("#filter-status").value = state.status;
    $("#filter-extractor").value = state.extractor;
  };
  fromAddress();
  window.addEventListener("popstate", () => { fromAddress(); load(); });
  const filters = () => ({ status: $("#filter-status").value, extractor: $("#filter-extractor").value });
  const go = () => { pushListState({ ...filters(), offset: String(offset) }, DEFAULTS); load(); };
  for (const id of ["#filter-status", "#filter-extractor"]) $(id).addEventListener("change", () => { offset = 0; go(); });
  async function load() {
    try {
      const chosen = filters();
      const query = new URLSearchParams({ limit: String(size + 1), offset: String(offset) });
      for (const [name, value] of Object.entries(chosen)) if (value) query.set(name, value);
      const rows = await api("GET", `/v1/runs?${query}`);
      const filtered = Boolean(chosen.status || chosen.extractor);
      const runs = rows.slice(0, size);
      $("#run-table tbody").replaceChildren(...runs.map((r) =>
        el("tr", {},
          el("td", {}, el("a", { href: `/console/runs/${r.id}`, text: `${r.input_name} · ${r.id.slice(0, 8)}` })),
          el("td", {}, pill(r.status)),
          el("td", {}, el("progress", { max: "1", value: String(r.progress), "aria-label": `progress of run ${r.id.slice(0, 8)}` })),
          el("td", { text: String(r.entities_found) }),
          el("td", { text: when(r.created_at) }))));
      $("#run-empty").hidden = runs.length > 0 || offset > 0 || filtered;
      $("#run-nomatch").hidden = runs.length > 0 || offset > 0 || !filtered;
      loaded();
      $("#prev").disabled = offset === 0;
      $("#next").disabled = rows.length <= size;
    } catch (error) { showError("page-error", error); }
  }
  $("#prev").addEventListener("click", () => { offset = Math.max(0, offset - size); go(); });
  $("#next").addEventListener("click", () => { offset += size; go(); });
  load();
};

// A distinct colour per class of one run: hues a golden angle apart, in the classes' order,
// so the legend and the marks agree and no two classes of a run look alike.
function classColours(classes) {
  return new Map([...classes].sort().map((c, i) => [c, `hsl(${Math.round((i * 137.508) % 360)} 70% 80%)`]));
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
    setPill($("#run-status"), run.status);
    body.dataset.runStatus = run.status;
    $("#run-progress").value = run.progress;
    $("#run-facts").textContent = runFacts(run, started);
    $("#cancel-run").disabled = run.status !== "running" || run.cancel_requested;
    $("#resume-run").disabled = run.status === "running" || run.status === "completed";
    if (run.error !== undefined) $("#run-error-text").textContent = run.error || "none";
    if (!run.created_at) return; // a change event: the counts only
    $("#run-created").textContent = when(run.created_at);
    $("#run-finished").textContent = when(run.finished_at) || "not finished";
    $("#run-took").textContent = took(run.created_at, run.finished_at);
    $("#run-holder").textContent = run.holder || "none";
    $("#run-extractor").textContent = run.extractor;
    const part = (value, what) => (value === null || value === undefined ? `${what}: server default` : `${what}: ${value}`);
    $("#run-chunking").textContent = [part(run.chunk_size, "chunk size"), part(run.overlap, "overlap"), part(run.batch_size, "chunks per batch")].join(" · ");
    $("#run-input-sha").textContent = run.input_sha256;
  }

  async function completed() {
    if (shown) return;
    shown = true;
    const run = await api("GET", `/v1/runs/${itemId}`); // the outputs (and timings): read once
    render(run);
    workersNow();
    await showResults(run);
  }

  // Each worker's committed batches and throughput (a run spreads over the fleet). Read on
  // load and again as the run's events come, at most once a WORKERS_EVERY_MS: no events, no
  // reads, and a run committing hundreds of batches a second costs one read a second.
  const WORKERS_EVERY_MS = 1000;
  let workersDue = null;
  let workersRead = 0;
  const rate = (value) => (value === null || value === undefined ? "not yet known" : `${value.toFixed(2)} batches/s`);
  let workersAsked = 0;
  async function readWorkers() {
    workersDue = null;
    workersRead = Date.now();
    const asked = ++workersAsked;
    try {
      const found = await api("GET", `/v1/runs/${itemId}/workers`);
      if (asked !== workersAsked) return; // a later read was sent: its answer is newer
      $("#workers tbody").replaceChildren(...found.workers.map((w) => el("tr", {},
        el("td", { "data-label": "Worker" }, el("code", { text: w.worker || "unknown" })),
        el("td", { "data-label": "Batches done", text: String(w.batches) }),
        el("td", { "data-label": "Batches/s", text: rate(w.batches_per_s) }))));
      const count = found.workers.length;
      $("#workers-rate").textContent = count
        ? `${count} worker${count === 1 ? "" : "s"} · ${rate(found.batches_per_s)} together`
        : "No batch committed yet.";
      body.dataset.workersRead = String(Number(body.dataset.workersRead || "0") + 1);
    } catch (error) { showError("page-error", error); }
  }
  function workersSoon() {
    if (workersDue !== null) return;
    workersDue = setTimeout(readWorkers, Math.max(0, workersRead + WORKERS_EVERY_MS - Date.now()));
  }
  function workersNow() { clearTimeout(workersDue); readWorkers(); }

  // Progress is pushed: the run's event stream (SSE), from the change log in the database,
  // so a run that a worker process executes shows here too. No polling; the stream ends
  // when the run stops, and Resume opens a new one after the last event seen.
  // A stopped run may be resumed elsewhere (another tab, the CLI): while it is stopped the
  // stream is asked again now and then, which answers 204 until a change follows the last.
  const WATCH_STOPPED_MS = 1500;
  let again = null;
  async function live() {
    if (stream) stream.abort();
    clearTimeout(again);
    const controller = new AbortController();
    stream = controller;
    try {
      await follow(`/v1/runs/${itemId}/events`, async (_name, change) => {
        lastSeq = change.seq;
        body.dataset.runEvents = String(Number(body.dataset.runEvents || "0") + 1);
        render(change);
        workersSoon();
        if (change.status === "completed") await completed();
      }, { lastEventId: lastSeq, signal: controller.signal });
    } catch (error) {
      if (controller.signal.aborted || notFound(error, "run", "/console/runs")) return;
      showError("page-error", error);
      // A dropped connection or a restarting server: asked again, after the last event seen.
      if (stream === controller) again = setTimeout(live, 2 * WATCH_STOPPED_MS);
      return;
    }
    if (stream === controller && !controller.signal.aborted && body.dataset.runStatus !== "completed") {
      again = setTimeout(live, WATCH_STOPPED_MS);
    }
  }

  async function load() {
    try {
      const run = await api("GET", `/v1/runs/${itemId}`);
      render(run);
      workersNow();
      if (run.status === "completed") { shown = true; await showResults(run); return; }
      live();
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
    const colours = classColours(new Set(mentions.map((m) => m.class)));
    const classColour = (c) => colours.get(c);
    const graph = JSON.parse(jsonld)["@graph"] || [];
    // Offsets count code points; Array.from splits the text the same way.
    const chars = Array.from(text);
    const sorted = [...mentions].sort((a, b) => a.start - b.start || b.end - a.end);
    const parts = [];
    let at = 0;
    for (const m of sorted) {
      if (m.start < at) continue; // overlapping mention: the outer one is shown
      parts.push(chars.slice(at, m.start).join(""));
      parts.push(el("mark", { "data-class": m.class, "data-entity": m.entity, tabindex: "0", "aria-describedby": "mention-info", style: `background:${classColour(m.class)}`, text: chars.slice(m.start, m.end).join("") }));
      at = m.end;
    }
    parts.push(chars.slice(at).join(""));
    $("#source").replaceChildren(...parts);
    $("#source").dataset.mentions = String(mentions.length);
    const classes = [...new Set(mentions.map((m) => m.class))].sort();
    // The legend filters: a class switched off keeps its text, without its highlight.
    $("#legend").replaceChildren(...classes.map((c) => {
      const count = mentions.filter((m) => m.class === c).length;
      const toggle = el("button", { type: "button", class: "class-toggle", "aria-pressed": "true", "data-class": c, style: `--swatch:${classColour(c)}`, text: `${shortIri(c)} (${count})` });
      toggle.addEventListener("click", () => {
        const on = toggle.getAttribute("aria-pressed") !== "true";
        toggle.setAttribute("aria-pressed", String(on));
        for (const mark of document.querySelectorAll("#source mark")) if (mark.dataset.class === c) mark.classList.toggle("off", !on);
        $("#source").dataset.hidden = String(document.querySelectorAll("#source mark.off").length);
      });
      return toggle;
    }));
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
    const attributes = new Map(); // entity -> [[property, value]]
    for (const node of graph) {
      if (node["rdfs:label"]) labels.set(node["@id"], node["rdfs:label"]);
      for (const [key, value] of Object.entries(node)) {
        if (key.startsWith("@") || key === "rdfs:label") continue;
        for (const one of Array.isArray(value) ? value : [value]) {
          if (one && one["@id"]) relations.push([node["@id"], key, one["@id"]]);
          else if (one !== null && one !== undefined) {
            const list = attributes.get(node["@id"]) || [];
            list.push([key, typeof one === "object" ? one["@value"] ?? JSON.stringify(one) : String(one)]);
            attributes.set(node["@id"], list);
          }
        }
      }
    }
    // Hover or focus a mention: its entity's class, attributes and relations, beside the text.
    function explain(mark) {
      const entity = mark.dataset.entity;
      const name = (iri) => labels.get(iri) || shortIri(iri);
      const rels = relations.filter(([s, , o]) => s === entity || o === entity);
      $("#mention-info").replaceChildren(
        el("strong", { text: mark.textContent }), ` · ${shortIri(mark.dataset.class)} · `, el("code", { text: entity }),
        el("ul", {},
          ...(attributes.get(entity) || []).map(([k, v]) => el("li", { class: "attribute", text: `${shortIri(k)}: ${v}` })),
          ...rels.map(([s, p, o]) => el("li", { class: "relation", text: `${name(s)} ${shortIri(p)} ${name(o)}` }))),
        rels.length || attributes.has(entity) ? "" : el("p", { text: "No attributes or relations." }));
      $("#mention-info").hidden = false;
    }
    for (const mark of document.querySelectorAll("#source mark")) {
      mark.addEventListener("mouseenter", () => explain(mark));
      mark.addEventListener("focus", () => explain(mark));
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

// The gauge counts unfinished tasks only (from the partial claim index, not a table scan).
const TASK_STATUSES = ["queued", "running"];

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
    loaded();
    body.dataset.ready = "true";
  }
  $("#refresh").addEventListener("click", load);
  load();
};

// Money as the ledger keeps it: micro-dollars, so up to six decimals.
const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 6 });

pages.usage = () => {
  // The owner's usage ledger (GET /v1/usage), grouped as chosen; the grouping is in the
  // address, so a reload or a shared link keeps it.
  const GROUPS = { day: "Day", profile: "Profile", key: "API key" };
  const DEFAULTS = { by: "day" };
  const group = () => (GROUPS[listState(DEFAULTS).by] ? listState(DEFAULTS).by : "day");
  function totals(rows) {
    const sum = (field) => rows.reduce((total, row) => total + row[field], 0);
    const calls = sum("calls"), hits = sum("hits");
    $("#usage-calls").textContent = String(calls);
    $("#usage-hits").textContent = String(hits);
    $("#usage-rate").textContent = calls + hits ? `${Math.round((100 * hits) / (calls + hits))} % of answers were hits` : "no answers yet";
    $("#usage-tokens").textContent = `${sum("prompt_tokens")} in · ${sum("completion_tokens")} out`;
    $("#usage-cost").textContent = usd.format(sum("cost_usd"));
    $("#usage-saved").textContent = usd.format(sum("saved_usd"));
  }
  async function ledger() {
    const by = group();
    $("#usage-group").value = by;
    $("#usage-group-name").textContent = GROUPS[by];
    const rows = await api("GET", `/v1/usage?group=${by}`);
    totals(rows);
    $("#usage-table tbody").replaceChildren(...rows.map((u) => {
      // Calls without an API key are the server's default owner's (no key was sent).
      const name = by === "key" ? u.key || "no key" : u[by];
      return el("tr", { "data-group": name },
        el("td", { "data-label": GROUPS[by], text: name }), el("td", { text: String(u.calls) }), el("td", { text: String(u.hits) }),
        el("td", { text: String(u.prompt_tokens) }), el("td", { text: String(u.completion_tokens) }),
        el("td", { text: usd.format(u.cost_usd) }), el("td", { text: usd.format(u.saved_usd) }));
    }));
    $("#usage-empty").hidden = rows.length > 0;
  }
  async function stored() {
    const rows = await api("GET", "/v1/me/stored-usage");
    $("#stored-usage tbody").replaceChildren(...rows.map((u) =>
      el("tr", { "data-source": u.source },
        el("td", { text: u.profile }), el("td", { text: u.source }), el("td", { text: String(u.results) }),
        el("td", { text: String(u.prompt_tokens) }), el("td", { text: String(u.completion_tokens) }))));
    $("#stored-usage-empty").hidden = rows.length > 0;
  }
  async function limits() {
    // GET /v1/usage/limits: the owner's row, then each of its live keys'; read-only here.
    const rows = await api("GET", "/v1/usage/limits");
    const none = "no limit";
    $("#limits-table tbody").replaceChildren(...rows.map((row) => {
      const l = row.limits || {};
      const who = row.subject.startsWith("owner:") ? "all your keys together" : `key ${row.name ? `${row.name} · ` : ""}${row.subject.slice(4)}`;
      const budget = l.budget_usd == null ? none : `${usd.format(l.budget_usd)} a ${l.budget_period}`;
      return el("tr", { "data-subject": row.subject },
        el("td", { text: who }), el("td", { text: l.rpm == null ? none : String(l.rpm) }),
        el("td", { text: l.tpm == null ? none : String(l.tpm) }), el("td", { text: budget }),
        el("td", { text: l.lifetime_usd == null ? none : usd.format(l.lifetime_usd) }));
    }));
  }
  async function load() {
    delete body.dataset.ready;
    showError("usage-error", null);
    try { await Promise.all([ledger(), stored(), limits()]); } catch (error) { showError("usage-error", error); }
    loaded();
    body.dataset.ready = "true";
  }
  $("#usage-group").addEventListener("change", () => { pushListState({ by: $("#usage-group").value }, DEFAULTS); load(); });
  window.addEventListener("popstate", load);
  load();
};

// ---- start ----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  if (authRequired && body.dataset.page !== "login" && !storedKey()) {
    const handed = await keyFromOtherTab();
    if (!handed) {
      location.assign(`/console/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      return;
    }
    sessionStorage.setItem(KEY, handed);
  }
  const signOut = $("#sign-out");
  if (signOut) signOut.addEventListener("click", () => { forgetKey(); if (tabs) tabs.postMessage({ type: "forget" }); location.assign("/console/login"); });
  labelTableCells();
  const start = pages[body.dataset.page];
  if (start) start();
  if (body.dataset.page !== "login" && (!authRequired || storedKey())) {
    // Who this console acts as: the owner the API resolves these credentials to.
    api("GET", "/v1/me").then((me) => {
      $("#who").replaceChildren("signed in as ", el("strong", { text: me.owner }));
      $("#who").title = me.key_id ? `API key ${me.key_id}` : "no API key: the server's default owner";
    }).catch(() => {});
  }
});

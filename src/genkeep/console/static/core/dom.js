// The page's facts (which page, which item, whether a key is needed) and the small DOM
// helpers every page uses.

export const $ = (sel, root = document) => root.querySelector(sel);
export const body = document.body;
export const authRequired = body.dataset.authRequired === "true";
export const itemId = body.dataset.itemId;

export function el(tag, attrs = {}, ...children) {
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
export function labelTableCells() {
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
export function loaded(scope = document) {
  for (const button of scope.querySelectorAll("[data-needs-data]")) button.disabled = false;
  for (const table of scope.querySelectorAll("[aria-busy]")) table.removeAttribute("aria-busy");
  for (const row of scope.querySelectorAll("tr.placeholder")) row.remove();
  body.dataset.loaded = "true";
}

// A state at a glance: a coloured pill whose icon (CSS, by data-state) goes with the word,
// so the state is not told by colour alone and the text stays the state's name.

export function pill(state, text = state) {
  return el("span", { class: "pill", "data-state": state, text });
}
export function setPill(node, state, text = state) {
  node.textContent = text;
  node.classList.add("pill");
  node.dataset.state = state;
}

// A trace id, linked to the trace viewer when GENKEEP_TRACE_URL is set.
export function traceLink(traceId) {
  const template = body.dataset.traceUrl;
  if (!traceId) return el("span", { text: "" });
  if (!template) return el("code", { text: traceId });
  return el("a", { href: template.replace("{trace_id}", encodeURIComponent(traceId)), class: "trace", target: "_blank", rel: "noopener noreferrer" }, el("code", { text: traceId }));
}

// A page with unsaved edits asks before it is left; ``unsaved`` says whether it has any.
export function guardUnsaved(unsaved) {
  window.addEventListener("beforeunload", (event) => {
    if (!unsaved()) return;
    event.preventDefault();
    event.returnValue = "";
  });
}

// A submit button is off while its request is in flight, so a double-click sends it once.
export async function busy(button, work) {
  button.disabled = true;
  try { return await work(); } finally { button.disabled = false; }
}

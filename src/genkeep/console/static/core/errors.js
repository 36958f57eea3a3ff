// The API's problems (problem+json) as sentences a person reads, shown next to what caused them.
import { $, el, itemId } from "./dom.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// A problem shown as a sentence next to what caused it.
export function showError(id, error) {
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

export function problemSentence(error) {
  const p = error.problem || {};
  let text = plainMessage(p.detail || p.title || error.message);
  if (Array.isArray(p.errors) && p.errors.length) text = p.errors.map(plainError).join("; ");
  else if (Array.isArray(p.detail)) text = p.detail.map(plainError).join("; ");
  return text;
}

// An item page whose item the API does not know (or that is another owner's): the page's
// forms go, so nothing can be edited or submitted against it.
export function notFound(error, what, listHref) {
  if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 422)) return false;
  document.title = "Not found · genkeep console";
  $("main").replaceChildren(
    el("h1", { text: "Not found" }),
    el("p", { id: "page-error", class: "error", role: "alert", text: `The ${what} ${itemId} was not found: it does not exist, or it is not yours.` }),
    el("p", {}, el("a", { href: listHref, text: `All ${what}s` })));
  return true;
}

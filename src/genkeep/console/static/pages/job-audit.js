// The job page's audit log, one event at a time: what it did, by whom, which task of which
// kind, its error, and links to the artifacts it made.
import { el, traceLink } from "../core/dom.js";
import { when } from "../core/format.js";

// One audit entry in words: what changed, which task (its kind), its error, its artifacts.
// ``kindOf`` names a task's kind (a change event carries none); ``reveal`` opens the tab of
// an element (the artifact a link points to).
export function auditEntry(e, { kindOf, reveal }) {
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
    const kind = p.kind || kindOf(p.task_id) || "task";
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
      reveal(target);
      target.focus();
    });
    extra.push(" · ", link);
  }
  return el("li", { "data-event": e.event_type, "data-id": String(e.id) },
    el("strong", { text: e.event_type }), what.length ? " · " : "", detail, ...extra,
    el("br"), el("small", {}, `${when(e.created_at)} · by `, el("code", { text: e.actor }), " · trace ", traceLink(e.trace_id)));
}

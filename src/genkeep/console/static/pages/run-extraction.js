// The extraction view of a completed run: its validation, the source text with each mention
// highlighted by class (a legend that hides or shows a class), the entity of a mention on
// hover or focus, and the entities and relations as tables.
import { $, el, itemId } from "../core/dom.js";
import { fetchDocument } from "../core/files.js";

// A distinct colour per class of one run: hues a golden angle apart, in the classes' order,
// so the legend and the marks agree and no two classes of a run look alike.
function classColours(classes) {
  return new Map([...classes].sort().map((c, i) => [c, `hsl(${Math.round((i * 137.508) % 360)} 70% 80%)`]));
}
const shortIri = (iri) => iri.replace(/^.*[#/]/, "");

// Shown once, when the run is completed: its outputs are read whole.
export async function showExtraction(run) {
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

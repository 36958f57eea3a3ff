// The extraction runs: a form that starts one, and the list, filtered and paged in the address.
import { $, el, loaded, pill } from "../core/dom.js";
import { api } from "../core/api.js";
import { showError } from "../core/errors.js";
import { listState, pushListState } from "../core/address.js";
import { shippedSamples } from "../core/files.js";
import { when } from "../core/format.js";
import { start } from "../core/start.js";

start(() => {
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
    const { text, ontology } = await shippedSamples();
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
});

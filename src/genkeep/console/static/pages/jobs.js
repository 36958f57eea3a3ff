// The jobs list: a new job, and the owner's jobs paged by cursor (kept in the address).
import { $, el, loaded, pill } from "../core/dom.js";
import { api } from "../core/api.js";
import { showError } from "../core/errors.js";
import { listState, pushListState } from "../core/address.js";
import { when } from "../core/format.js";
import { start } from "../core/start.js";

start(() => {
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
});

// The prompts list: searched and paged, both kept in the address.
import { $, el, loaded, pill } from "../core/dom.js";
import { api } from "../core/api.js";
import { showError } from "../core/errors.js";
import { listState, pushListState } from "../core/address.js";
import { when } from "../core/format.js";
import { start } from "../core/start.js";

// A prompt's status drawn as the pill of the task state that means the same.
const PROMPT_STATES = { ready: "completed", generating: "running", pending: "queued", failed: "failed" };

start(() => {
  const size = 20;
  const DEFAULTS = { q: "", offset: "0" };
  let offset = 0;
  function fromAddress({ first = false } = {}) {
    const state = listState(DEFAULTS);
    // Words typed before this script ran (a slow first load) stay: only an address's own
    // search replaces them.
    if (!first || state.q || !$("#search").value) $("#search").value = state.q;
    offset = Math.max(0, Number(state.offset) || 0);
  }
  fromAddress({ first: true });
  window.addEventListener("popstate", () => { fromAddress(); load(); });
  const go = () => { pushListState({ q: $("#search").value.trim(), offset: String(offset) }, DEFAULTS); load(); };
  // A slower earlier answer (the unfiltered list) must not overwrite a later search's.
  let asked = 0;
  async function load() {
    showError("page-error", null);
    const q = encodeURIComponent($("#search").value.trim());
    const mine = ++asked;
    try {
      const rows = await api("GET", `/v1/prompts?q=${q}&limit=${size + 1}&offset=${offset}`);
      if (mine !== asked) return;
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
});

// The usage page: the owner's usage ledger, its limits, and its stored results.
import { $, body, el, loaded } from "../core/dom.js";
import { api } from "../core/api.js";
import { showError } from "../core/errors.js";
import { listState, pushListState } from "../core/address.js";
import { start } from "../core/start.js";

// Money as the ledger keeps it: micro-dollars, so up to six decimals.
const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 6 });

start(() => {
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
});

// The operations page: health probes, the server's counters and queue depth, duplicates.
import { $, body, el, loaded } from "../core/dom.js";
import { api } from "../core/api.js";
import { showError } from "../core/errors.js";
import { start } from "../core/start.js";

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

start(() => {
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
});

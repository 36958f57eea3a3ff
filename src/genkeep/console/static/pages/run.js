// An extraction run's page: its state and progress pushed live, its workers, cancel and
// resume, the downloads, and (once completed) the extraction view.
import { $, body, el, itemId, setPill } from "../core/dom.js";
import { api } from "../core/api.js";
import { notFound, showError } from "../core/errors.js";
import { downloadStored } from "../core/files.js";
import { took, when } from "../core/format.js";
import { FINISHED, follow } from "../core/stream.js";
import { start } from "../core/start.js";
import { showExtraction } from "./run-extraction.js";

// The run's counts in words, with its rate and time left while it runs.
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

start(() => {
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
    await showExtraction(run);
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
      if (run.status === "completed") { shown = true; await showExtraction(run); return; }
      live();
    } catch (error) { if (!notFound(error, "run", "/console/runs")) showError("page-error", error); }
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
});

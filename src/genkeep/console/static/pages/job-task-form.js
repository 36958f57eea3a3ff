// The job page's "Submit a task" form: one fieldset per kind this console knows (a kind it
// does not know takes its payload as JSON), checked before it is sent, and sent once.
import { $, busy, itemId } from "../core/dom.js";
import { api } from "../core/api.js";
import { showError } from "../core/errors.js";
import { shippedSamples } from "../core/files.js";
import { randomKey } from "../core/format.js";

// ``job`` gives the job as last read (null before); ``submitted`` shows a task the API took.
export function taskForm({ job, submitted }) {
  // One form per kind the API accepts; a kind without a form takes its payload as JSON.
  function showKind() {
    const kind = $("#task-kind").value;
    const known = [...document.querySelectorAll("#task-form fieldset.kind")].map((f) => f.dataset.kind);
    for (const box of document.querySelectorAll("#task-form fieldset.kind")) {
      box.hidden = box.dataset.kind !== (known.includes(kind) ? kind : "other");
    }
  }
  function number(id) { return $(id).value === "" ? undefined : Number($(id).value); }
  function payloadOf(kind) {
    if (kind === "export") {
      const payload = { formats: [...document.querySelectorAll('#task-form input[name="format"]:checked')].map((i) => i.value) };
      const source = $("#export-source").value;
      if (source !== "sections") payload[source] = $("#export-source-id").value.trim();
      if ($("#export-title").value.trim()) payload.title = $("#export-title").value.trim();
      return payload;
    }
    if (kind === "generate") {
      return { prompt: $("#task-prompt").value, profile: $("#task-profile").value || undefined };
    }
    if (kind === "extract") {
      return {
        text: $("#task-text").value, ontology: $("#task-ontology").value,
        ontology_name: $("#task-ontology-name").value || undefined, input_name: $("#task-input-name").value || undefined,
        chunk_size: number("#task-chunk-size"), overlap: number("#task-overlap"), batch_size: number("#task-batch-size"),
      };
    }
    try { return JSON.parse($("#task-payload").value || "{}"); }
    catch (error) { throw new Error(`The payload is not valid JSON: ${error.message}`); }
  }
  // What the worker would refuse only after queueing it is refused here, before submission.
  async function checkedPayload(kind) {
    const payload = payloadOf(kind);
    if (kind === "export") {
      if (!payload.formats.length) throw new Error("Choose at least one format to export.");
      const source = $("#export-source").value;
      if (source !== "sections") {
        const id = payload[source];
        const what = source === "prompt_id" ? "prompt" : "result";
        if (!id) throw new Error(`Give the id of the ${what} to export.`);
        try { await api("GET", `/v1/${what}s/${encodeURIComponent(id)}`); }
        catch (error) {
          if (error.status === 404 || error.status === 422) throw new Error(`There is no ${what} with the id ${id}.`);
          throw error;
        }
      } else if (job() && !job().sections.length) {
        throw new Error("The job has no sections to export: add and save one first.");
      }
    }
    if (kind === "generate" && !payload.prompt.trim()) throw new Error("The prompt to generate is empty.");
    if (kind === "extract") {
      if (!payload.text.trim()) throw new Error("The text to extract from is empty.");
      if (!payload.ontology.trim()) throw new Error("The ontology to extract with is empty.");
    }
    return payload;
  }
  $("#task-kind").addEventListener("change", showKind);
  $("#export-source").addEventListener("change", () => { $("#export-source-id").disabled = $("#export-source").value === "sections"; });
  $("#task-samples").addEventListener("click", async () => {
    const { text, ontology } = await shippedSamples();
    $("#task-text").value = text;
    $("#task-ontology").value = ontology;
    $("#task-ontology-name").value = "ontology.ttl";
    $("#task-input-name").value = "text.md";
  });
  // One key per intended submission: a repeat of the same form (a double-click, even one whose
  // second click comes after the first answer; a retry after a lost answer) is the same task.
  // An edit of the form, or a few seconds, make the next click a new submission.
  const REPEAT_MS = 3000;
  let submissionKey = null;
  $("#task-form").addEventListener("input", () => { submissionKey = null; });
  $("#task-form").addEventListener("change", () => { submissionKey = null; });
  $("#task-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#submit-task");
    if (button.disabled) return;
    showError("task-error", null);
    const kind = $("#task-kind").value;
    submissionKey = submissionKey || randomKey();
    await busy(button, async () => {
      try {
        const payload = await checkedPayload(kind);
        const task = await api("POST", `/v1/jobs/${itemId}/tasks`, {
          json: { kind, payload },
          headers: { "Idempotency-Key": submissionKey },
        });
        const sent = submissionKey;
        setTimeout(() => { if (submissionKey === sent) submissionKey = null; }, REPEAT_MS);
        submitted(task);
      } catch (error) { showError("task-error", error); }
    });
  });
  showKind();
}

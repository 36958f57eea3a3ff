// The generate page: one prompt through POST /v1/generate, with its cache control.
import { $ } from "../core/dom.js";
import { api } from "../core/api.js";
import { showError } from "../core/errors.js";
import { start } from "../core/start.js";

start(() => {
  const form = $("#generate-form");
  // max-age means something only with its choice; elsewhere it is out of the way.
  const maxAgeChosen = () => { $("#max-age").disabled = $("#cache").value !== "max-age"; };
  $("#cache").addEventListener("change", maxAgeChosen);
  maxAgeChosen();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("prompt-error", null);
    const prompt = $("#prompt").value;
    const request = { prompt, profile: $("#profile").value || null };
    const cache = $("#cache").value;
    if (cache === "no-cache") request.cache = { no_cache: true };
    if (cache === "no-store") request.cache = { no_store: true };
    if (cache === "max-age") {
      // An empty field is not 0 (which would refuse every stored result).
      if ($("#max-age").value.trim() === "") { showError("prompt-error", "Give max-age in seconds, or choose another cache control."); $("#max-age").focus(); return; }
      request.cache = { max_age: Number($("#max-age").value) };
    }
    const button = $("#generate");
    button.disabled = true;
    try {
      const answer = await api("POST", "/v1/generate", { json: request });
      const outcome = answer.cached ? "cached" : answer.coalesced ? "coalesced" : "generated";
      $("#answer-outcome").textContent = outcome;
      $("#answer-outcome").dataset.outcome = outcome;
      $("#answer-version").textContent = answer.version ?? "not persisted";
      $("#answer-sha").textContent = answer.content_sha256;
      const link = $("#answer-prompt");
      link.hidden = !answer.prompt_id;
      if (answer.prompt_id) link.href = `/console/prompts/${answer.prompt_id}`;
      $("#answer-content").textContent = answer.content;
      $("#answer").hidden = false;
      // The button was disabled while in flight, which drops focus to the page's top: a
      // keyboard or screen-reader user goes on from the answer instead.
      $("#answer").focus();
    } catch (error) {
      showError("prompt-error", error);
      $("#prompt").focus();
    } finally {
      button.disabled = false;
    }
  });
});

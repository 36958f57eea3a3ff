// A prompt's page: its versions, a diff of any two, edit, regenerate, export and preview.
import { $, body, el, itemId, loaded } from "../core/dom.js";
import { api } from "../core/api.js";
import { notFound, showError } from "../core/errors.js";
import { download } from "../core/files.js";
import { when } from "../core/format.js";
import { start } from "../core/start.js";
import { lineDiff } from "./prompt-diff.js";

start(() => {
  let prompt = null;
  let latest = null;
  // body[data-ready] tells a person's script (and the browser tests) the page is complete.
  async function load() {
    delete body.dataset.ready;
    try {
      prompt = await api("GET", `/v1/prompts/${itemId}`);
    } catch (error) {
      if (!notFound(error, "prompt", "/console/prompts")) showError("page-error", error);
      return;
    }
    $("#prompt-text").textContent = prompt.prompt;
    $("#prompt-status").textContent = prompt.status;
    $("#prompt-profile").textContent = prompt.profile;
    $("#versions tbody").replaceChildren(
      ...prompt.results.map((r) =>
        el("tr", { "data-version": String(r.version) },
          el("td", { text: String(r.version) + (r.id === prompt.latest_result_id ? " (latest)" : "") }),
          el("td", { text: r.source }),
          el("td", { text: r.model }),
          el("td", { text: when(r.created_at) }),
          el("td", {}, el("code", { text: r.content_sha256.slice(0, 16) + "…", title: r.content_sha256 })),
          el("td", {}, el("code", { text: r.id })))));
    for (const select of [$("#diff-a"), $("#diff-b")]) {
      select.replaceChildren(...prompt.results.map((r) => el("option", { value: r.id, text: `v${r.version} (${r.source})` })));
    }
    if (prompt.results.length > 1) $("#diff-a").selectedIndex = prompt.results.length - 2;
    $("#diff-b").selectedIndex = prompt.results.length - 1;
    if (prompt.latest_result_id) {
      latest = await api("GET", `/v1/results/${prompt.latest_result_id}`);
      $("#edit-content").value = latest.content;
      const page = await api("GET", `/v1/results/${latest.id}/preview`, { raw: true });
      $("#preview").srcdoc = await page.text();
    }
    loaded();
    body.dataset.ready = "true";
  }
  $("#regenerate").addEventListener("click", async () => {
    showError("regenerate-error", null);
    // A new generator call, which may be paid for: asked, not done on a stray click.
    if (!confirm("Regenerate this prompt? This calls the generator again (it may be paid for) and stores a new version.")) return;
    try { await api("POST", `/v1/prompts/${itemId}/regenerate`); await load(); }
    catch (error) { showError("regenerate-error", error); }
  });
  $("#edit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("edit-error", null);
    if (!latest) return;
    if ($("#edit-content").value === latest.content) {
      showError("edit-error", "Nothing changed: the content is the latest version's, so no new version is saved.");
      return;
    }
    try {
      await api("POST", `/v1/results/${latest.id}/edits`, { json: { content: $("#edit-content").value } });
      await load();
    } catch (error) { showError("edit-error", error); }
  });
  $("#diff-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("diff-error", null);
    let a, b;
    try {
      [a, b] = await Promise.all([
        api("GET", `/v1/results/${$("#diff-a").value}`),
        api("GET", `/v1/results/${$("#diff-b").value}`),
      ]);
    } catch (error) {
      $("#diff").replaceChildren();
      showError("diff-error", error);
      return;
    }
    if (a.content === b.content) {
      $("#diff").replaceChildren(el("span", { class: "same", text: "No difference: the two versions are identical." }));
      return;
    }
    $("#diff").replaceChildren(...lineDiff(a.content, b.content).map(([mark, line]) =>
      el("span", { class: mark === "+" ? "add" : mark === "-" ? "del" : "same", text: `${mark} ${line}\n` })));
  });
  for (const button of document.querySelectorAll("button.export")) {
    button.addEventListener("click", async () => {
      showError("export-error", null);
      if (!latest) return;
      try {
        const response = await api("POST", "/v1/export", { json: { result_id: latest.id, format: button.dataset.format }, raw: true });
        $("#export-result").textContent = response.headers.get("X-Genkeep-Result-Id") || "";
        // The downloaded file's hash, to check it by; the stored content's is another one.
        $("#export-sha").textContent = response.headers.get("X-Genkeep-File-Sha256") || "";
        $("#export-content-sha").textContent = response.headers.get("X-Genkeep-Content-Sha256") || "";
        $("#export-file").textContent = await download(response, `export.${button.dataset.format}`);
        $("#export-facts").hidden = false;
      } catch (error) { showError("export-error", error); }
    });
  }
  load();
});

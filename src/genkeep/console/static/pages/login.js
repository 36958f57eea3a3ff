// The login page: a key is kept for this tab once the API accepts it.
import { $ } from "../core/dom.js";
import { forgetKey, keepKey } from "../core/auth.js";
import { api } from "../core/api.js";
import { showError } from "../core/errors.js";
import { start } from "../core/start.js";

start(() => {
  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    keepKey(key);
    try {
      await api("GET", "/v1/me");
      if ($("#remember").checked) keepKey(key, { remember: true });
      const next = new URLSearchParams(location.search).get("next") || "/console";
      location.assign(next.startsWith("/console") ? next : "/console");
    } catch (error) {
      forgetKey();
      showError("login-error", error);
    }
  });
});

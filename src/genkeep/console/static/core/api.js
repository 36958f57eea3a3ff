// The one way the console calls the server: the public API, with the same auth as any client.
import { authRequired, body } from "./dom.js";
import { ApiError } from "./errors.js";
import { forgetKey, storedKey } from "./auth.js";

function authHeaders() {
  const key = storedKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Every call of the console goes through here: same endpoints, same auth as any client.
export async function api(method, path, { json, headers = {}, raw = false } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    // The browser's "Failed to fetch" says nothing to a person: the request never got an answer.
    throw new Error("The server could not be reached: check the network connection (and that genkeep is running), then try again.");
  }
  if (!response.ok) {
    let problem = {};
    try { problem = await response.json(); } catch (e) { problem = { title: response.statusText }; }
    if (response.status === 401 && authRequired && body.dataset.page !== "login") {
      forgetKey();
      location.assign(`/console/login?next=${encodeURIComponent(location.pathname)}`);
    }
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

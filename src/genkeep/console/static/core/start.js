// Every page module ends with ``start(page)``: the key is found (or asked for) before the
// page's own code calls the API, then the parts every page shares are set up around it.
import { $, authRequired, body, el, labelTableCells } from "./dom.js";
import { forgetKeyEverywhere, keepKey, keyFromOtherTab, storedKey } from "./auth.js";
import { api } from "./api.js";

async function run(page) {
  if (authRequired && body.dataset.page !== "login" && !storedKey()) {
    const handed = await keyFromOtherTab();
    if (!handed) {
      location.assign(`/console/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      return;
    }
    keepKey(handed);
  }
  const signOut = $("#sign-out");
  if (signOut) signOut.addEventListener("click", () => { forgetKeyEverywhere(); location.assign("/console/login"); });
  labelTableCells();
  if (page) page();
  if (body.dataset.page !== "login" && (!authRequired || storedKey())) {
    // Who this console acts as: the owner the API resolves these credentials to.
    api("GET", "/v1/me").then((me) => {
      $("#who").replaceChildren("signed in as ", el("strong", { text: me.owner }));
      $("#who").title = me.key_id ? `API key ${me.key_id}` : "no API key: the server's default owner";
    }).catch(() => {});
  }
}

// A module script runs once the document is parsed, before DOMContentLoaded; the listener
// keeps the one-file console's order (and a page whose script came late still starts).
export function start(page = null) {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => run(page));
  else run(page);
}

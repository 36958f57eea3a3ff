// The API key (when the server requires one) lives in sessionStorage, so it is forgotten
// when the tab closes; a new tab asks the open tabs for it over a BroadcastChannel (same
// origin, memory only), and localStorage holds it only when the person ticked "Remember on
// this device".
import { authRequired } from "./dom.js";

const KEY = "genkeep-api-key";
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("genkeep-console") : null;
export const storedKey = () => sessionStorage.getItem(KEY) || localStorage.getItem(KEY);

// This tab's key; ``remember`` keeps it on the device too, until it is forgotten.
export function keepKey(key, { remember = false } = {}) {
  sessionStorage.setItem(KEY, key);
  if (remember) localStorage.setItem(KEY, key);
}
export function forgetKey() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}
// "Forget key": this tab forgets it, and tells the console's other tabs to.
export function forgetKeyEverywhere() {
  forgetKey();
  if (tabs) tabs.postMessage({ type: "forget" });
}
if (tabs) {
  tabs.addEventListener("message", (event) => {
    const message = event.data || {};
    // A tab of this console opened without the key asks; a tab that has one answers.
    if (message.type === "ask" && storedKey()) tabs.postMessage({ type: "key", key: storedKey() });
    // "Forget key" in one tab forgets it in every tab.
    if (message.type === "forget") { forgetKey(); if (authRequired) location.assign("/console/login"); }
  });
}
// The key from another open tab, or null after a short wait when no tab has one.
export function keyFromOtherTab() {
  if (!tabs) return Promise.resolve(null);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { tabs.removeEventListener("message", answer); resolve(null); }, 400);
    function answer(event) {
      if ((event.data || {}).type !== "key") return;
      clearTimeout(timer);
      tabs.removeEventListener("message", answer);
      resolve(event.data.key);
    }
    tabs.addEventListener("message", answer);
    tabs.postMessage({ type: "ask" });
  });
}

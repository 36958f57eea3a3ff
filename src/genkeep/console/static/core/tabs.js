// The job page's tabs, kept in the address like a list's search.
import { body } from "./dom.js";
import { pushListState } from "./address.js";

// WAI-ARIA tabs (automatic activation): one panel shown at a time; Left and Right arrows,
// Home and End move between the tabs and show theirs. The tab is in the address (?tab=), so
// a reload or a shared link opens it; a click adds a Back step, an arrow key replaces the
// step (browsing the tabs by keyboard does not fill the history). ``reveal`` shows the tab
// whose panel holds an element (a link to an artifact from the audit log). ``implied`` names
// the tab an address without one means (a link with a task filter: the tasks).
export function tabsOf(list, implied = () => null) {
  const tabs = [...list.querySelectorAll('[role="tab"]')];
  const names = tabs.map((tab) => tab.dataset.tab);
  function show(name, focus = false) {
    const chosen = names.includes(name) ? name : names[0];
    for (const tab of tabs) {
      const on = tab.dataset.tab === chosen;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
      if (on && focus) tab.focus();
    }
    body.dataset.tab = chosen;
  }
  function choose(name, { focus = false, replace = false } = {}) {
    show(name, focus);
    // The tab's name leaves the address only where the address means that tab anyway.
    pushListState({ tab: name }, { tab: implied() || names[0] }, { replace });
  }
  list.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) choose(tab.dataset.tab);
  });
  list.addEventListener("keydown", (event) => {
    const at = tabs.indexOf(document.activeElement);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (at < 0 || to === undefined) return;
    event.preventDefault();
    choose(names[(to + tabs.length) % tabs.length], { focus: true, replace: true });
  });
  const fromAddress = () => show(new URLSearchParams(location.search).get("tab") || implied() || names[0]);
  window.addEventListener("popstate", fromAddress);
  fromAddress();
  return {
    reveal(element) {
      const panel = element && element.closest('[role="tabpanel"]');
      if (panel && panel.hidden) choose(tabs.find((tab) => tab.getAttribute("aria-controls") === panel.id).dataset.tab);
    },
  };
}

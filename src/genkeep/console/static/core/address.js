// A list's search and page live in the address: a reload keeps them, Back returns to them.
export function listState(defaults) {
  const params = new URLSearchParams(location.search);
  return Object.fromEntries(Object.entries(defaults).map(([name, value]) => [name, params.get(name) ?? value]));
}
// The other parameters of the address stay (a job page's tab and its task filters).
export function pushListState(state, defaults, { replace = false } = {}) {
  const params = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(state)) {
    if (value === null || String(value) === String(defaults[name])) params.delete(name);
    else params.set(name, value);
  }
  const query = params.toString();
  const url = location.pathname + (query ? `?${query}` : "");
  if (url === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
}

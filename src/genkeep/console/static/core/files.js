// Files to and from the browser: an export the API answers with, a stored file's signed URL,
// a stored document read through the API, the shipped samples.
import { el } from "./dom.js";
import { api } from "./api.js";

// The file's name as Content-Disposition gives it: RFC 6266's filename* (UTF-8) first.
function dispositionName(disposition, fallbackName) {
  const extended = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  if (extended) return decodeURIComponent(extended[1]);
  const plain = /filename="([^"]+)"/.exec(disposition);
  return plain ? plain[1] : fallbackName;
}

function save(href, name) {
  const a = el("a", { href, download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

// A file the API answered with itself (an export).
export async function download(response, fallbackName) {
  const name = dispositionName(response.headers.get("Content-Disposition") || "", fallbackName);
  const url = URL.createObjectURL(await response.blob());
  save(url, name);
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return name;
}

// A stored file: the browser goes to its signed URL, which needs neither the API key nor
// CORS rules on an S3 or Azure bucket (fetching it from this page would need both).
export async function downloadStored(path, name) {
  const signed = await api("GET", `${path}${path.includes("?") ? "&" : "?"}deliver=url`);
  save(signed.url, name);
  return name;
}

// A stored file this page shows: through the API, so the object store needs no CORS rules.
export async function fetchDocument(path) {
  const separator = path.includes("?") ? "&" : "?";
  return (await api("GET", `${path}${separator}deliver=content`, { raw: true })).text();
}

// The extraction samples shipped in the package (a text and its ontology), for the run forms.
export async function shippedSamples() {
  const [text, ontology] = await Promise.all(["text", "ontology"].map(async (name) => (await fetch(`/console/samples/${name}`)).text()));
  return { text, ontology };
}

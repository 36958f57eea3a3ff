// Times, durations and keys in the words and forms a person reads.

// crypto.randomUUID needs a secure context; a console served over plain http has none.
export const randomKey = () => [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

// How long something took, in words a person reads at a glance.
export function took(fromIso, toIso) {
  if (!fromIso || !toIso) return "";
  const seconds = (new Date(toIso) - new Date(fromIso)) / 1000;
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

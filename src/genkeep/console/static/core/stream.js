// Live pages: a task's or a run's event stream, pushed by the server (no polling).
import { api } from "./api.js";

// Server-Sent Events read with fetch, so the stream carries the same Authorization header.
// A 204 means the stream has nothing more to send (a finished task, a stopped run).
export async function follow(path, onEvent, { lastEventId = null, signal = null } = {}) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId !== null) headers["Last-Event-ID"] = String(lastEventId);
  const response = await api("GET", path, { raw: true, headers });
  if (response.status === 204 || !response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    if (signal && signal.aborted) { reader.cancel(); return; }
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      const name = (block.split("\n").find((l) => l.startsWith("event:")) || "event: message").slice(6).trim();
      if (signal && signal.aborted) { reader.cancel(); return; }
      if (data) {
        let parsed;
        try { parsed = JSON.parse(data); } catch (e) { continue; } // not JSON: ignore
        await onEvent(name, parsed);
      }
    }
  }
}

// A task (or run) in one of these states is done: its stream has nothing more to send.
export const FINISHED = new Set(["completed", "failed", "cancelled"]);

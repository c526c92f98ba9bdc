// The HTTP API (OpenAPI at /docs): the method list, a streamed run, cancelling it.
import { LineReader } from "./stream.js";

export async function methods() {
  return (await fetch("/api/methods")).json();
}

// Start a run; `onEvent(event)` gets every streamed event. Resolves when the stream ends; `job.id` is known
// after the first event and `cancel()` stops the job on the server.
export function run(form, onEvent) {
  const job = { id: null };
  job.cancel = async () => {
    if (job.id) await fetch(`/api/jobs/${job.id}/cancel`, { method: "POST" });
  };
  job.done = (async () => {
    const response = await fetch("/api/inpaint", { method: "POST", body: form });
    if (!response.ok) {
      let detail = `${response.status} ${response.statusText}`;
      try { detail = (await response.json()).detail; } catch { /* not JSON */ }
      let fields = {};
      try { fields = JSON.parse(response.headers.get("X-Bad-Fields") || "{}"); } catch { /* none */ }
      onEvent({ type: "error", error: typeof detail === "string" ? detail : JSON.stringify(detail), fields });
      return;
    }
    const reader = response.body.getReader(), decoder = new TextDecoder(), lines = new LineReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const event of lines.feed(decoder.decode(value, { stream: true }))) {
        if (event.type === "job") job.id = event.job;
        onEvent(event);
      }
    }
  })();
  return job;
}

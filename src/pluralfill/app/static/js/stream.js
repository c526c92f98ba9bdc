// The run's event stream and its progress, with no DOM in it (unit-tested under node).

// Newline-delimited JSON as it arrives in pieces: feed(text) returns the complete events so far.
export class LineReader {
  constructor() { this.buffer = ""; }
  feed(text) {
    this.buffer += text;
    const lines = this.buffer.split("\n");
    this.buffer = lines.pop();
    return lines.filter((l) => l.trim()).map((l) => JSON.parse(l));
  }
}

// Progress of a run of `total` samples: `finished` seconds of each finished sample, the current sample's
// share done (0-1). Returns {fraction, secondsLeft} (secondsLeft null until there is anything to go on).
export function estimate(total, finished, current, currentElapsed) {
  const done = finished.length;
  const fraction = Math.min((done + current) / total, 1);
  let perSample = null;
  if (done) perSample = finished.reduce((a, b) => a + b, 0) / done;
  else if (current > 0.05) perSample = currentElapsed / current;
  const secondsLeft = perSample === null ? null : Math.max(perSample * (total - done - current), 0);
  return { fraction, secondsLeft };
}

export function formatSeconds(s) {
  if (s === null) return "estimating…";
  if (s < 60) return `~${Math.ceil(s)} s left`;
  return `~${Math.floor(s / 60)} min ${Math.round(s % 60)} s left`;
}

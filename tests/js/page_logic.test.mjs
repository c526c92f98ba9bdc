// Unit tests of the page's logic without a browser: `node --test tests/js/` (pytest runs them, test_app.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { History } from "../../src/pluralfill/app/static/js/history.js";
import { clip, grow, growMask, hasTransparency, holeFromImage, inferno, layerToBinary, spreadMap } from "../../src/pluralfill/app/static/js/pixels.js";
import { LineReader, estimate, formatSeconds } from "../../src/pluralfill/app/static/js/stream.js";
import { fit, toImage, zoomAt } from "../../src/pluralfill/app/static/js/viewmath.js";

// A change to one value, undoable: what the painter's entries do to pixels.
function setter(state, key, value, bytes = 1) {
  const before = state[key];
  state[key] = value;
  return { undo: () => (state[key] = before), redo: () => (state[key] = value), bytes };
}

test("undo and redo walk the changes back and forth in order", () => {
  const state = { hole: 0, photo: "a" }, h = new History();
  h.push(setter(state, "hole", 1));
  h.push(setter(state, "hole", 2));
  h.push(setter(state, "photo", "b")); // a round of use-as-input on the same stack
  assert.equal(h.undo(), true);
  assert.deepEqual(state, { hole: 2, photo: "a" });
  h.undo();
  assert.equal(state.hole, 1);
  h.redo();
  h.redo();
  assert.deepEqual(state, { hole: 2, photo: "b" });
  assert.equal(h.redo(), false);
  h.undo();
  h.undo();
  h.push(setter(state, "hole", 9)); // a new change drops what was undone
  assert.equal(h.redo(), false);
  h.undo();
  h.undo();
  assert.equal(state.hole, 0);
  assert.equal(h.undo(), false);
});

test("the oldest changes go once the history holds too many bytes, never the newest", () => {
  const state = { v: 0 }, h = new History(10);
  for (let i = 1; i <= 5; i++) h.push(setter(state, "v", i, 4));
  assert.equal(h.done.length, 2);
  assert.ok(h.bytes() <= 10);
  h.undo();
  h.undo();
  assert.equal(state.v, 3);
  const big = new History(1);
  big.push(setter(state, "v", 7, 100));
  assert.equal(big.done.length, 1);
});

test("a painted layer becomes white-on-black, and masks become hole overlays", () => {
  const rgba = new Uint8ClampedArray([255, 0, 255, 255, 0, 0, 0, 0, 10, 10, 10, 1]);
  const out = new Uint8ClampedArray(12);
  assert.equal(layerToBinary(rgba, out), 2);
  assert.deepEqual([...out], [255, 255, 255, 255, 0, 0, 0, 255, 255, 255, 255, 255]);
  const mask = new Uint8ClampedArray([255, 255, 255, 255, 0, 0, 0, 255, 200, 100, 60, 255]); // white, black, luminance 125
  const overlay = new Uint8ClampedArray(12);
  assert.equal(holeFromImage(mask, overlay), 1);
  assert.deepEqual([overlay[3], overlay[7], overlay[11]], [255, 0, 0]);
  assert.deepEqual([...overlay.slice(0, 3)], [255, 0, 255]);
  assert.equal(holeFromImage(mask, overlay, { invert: true }), 2);
  assert.deepEqual([overlay[3], overlay[7], overlay[11]], [0, 255, 255]);
  const transparent = new Uint8ClampedArray([9, 9, 9, 255, 9, 9, 9, 0]);
  assert.equal(holeFromImage(transparent, new Uint8ClampedArray(8), { fromAlpha: true }), 1);
  assert.equal(hasTransparency(transparent), true);
  assert.equal(hasTransparency(mask), false);
});

test("dirty rectangles grow round each dab and clip to the image", () => {
  let r = grow(null, 10, 10, 2);
  assert.deepEqual(r, { x: 8, y: 8, w: 4, h: 4 });
  r = grow(r, 20, 5, 1);
  assert.deepEqual(r, { x: 8, y: 4, w: 13, h: 8 });
  assert.deepEqual(clip({ x: -5, y: 2, w: 10, h: 100 }, 8, 8), { x: 0, y: 2, w: 5, h: 6 });
  assert.equal(clip({ x: 9, y: 0, w: 3, h: 3 }, 8, 8), null);
});

test("the spread map is zero where samples agree and brightest where they differ most", () => {
  const px = (...values) => new Uint8ClampedArray(values.flatMap((v) => [v, v, v, 255]));
  const a = px(10, 0, 50, 25), b = px(10, 100, 50, 75), hole = new Uint8Array([1, 1, 0, 1]);
  const out = new Uint8ClampedArray(16);
  const top = spreadMap([a, b], hole, out);
  assert.equal(top, 50); // the sd of {0, 100}
  assert.deepEqual([...out.slice(0, 4)], [...inferno(0), 255]);
  assert.deepEqual([...out.slice(4, 8)], [...inferno(1), 255]);
  assert.equal(out[11], 0); // outside the hole: transparent
  assert.deepEqual([...out.slice(12, 16)], [...inferno(0.5), 255]); // the sd of {25, 75}: half way, linear
});

test("streamed lines are parsed whole, however the bytes are cut", () => {
  const r = new LineReader();
  assert.deepEqual(r.feed('{"job": "a"}\n{"ind'), [{ job: "a" }]);
  assert.deepEqual(r.feed('ex": 0}\n\n{"done": true}\n'), [{ index: 0 }, { done: true }]);
  assert.deepEqual(r.feed(""), []);
});

test("the estimate uses finished samples, else the current one's pace", () => {
  assert.deepEqual(estimate(4, [], 0, 0), { fraction: 0, secondsLeft: null });
  const early = estimate(4, [], 0.5, 2); // half a sample in 2 s
  assert.equal(early.fraction, 0.125);
  assert.equal(early.secondsLeft, 14);
  const later = estimate(4, [2, 4], 0, 0);
  assert.equal(later.fraction, 0.5);
  assert.equal(later.secondsLeft, 6);
  assert.equal(estimate(2, [1, 1], 0, 0).secondsLeft, 0);
  assert.equal(formatSeconds(null), "estimating…");
  assert.equal(formatSeconds(4.2), "~5 s left");
  assert.equal(formatSeconds(125), "~2 min 5 s left");
});

test("zoom keeps the point under the pointer, and fit centres the photo", () => {
  const t = fit(4000, 3000, 800, 600);
  assert.deepEqual(t, { scale: 0.2, x: 0, y: 0 });
  const [ix, iy] = toImage(t, 300, 200);
  const z = zoomAt(t, 3, 300, 200);
  assert.equal(z.scale.toFixed(6), "0.600000");
  const [jx, jy] = toImage(z, 300, 200);
  assert.ok(Math.abs(ix - jx) < 1e-9 && Math.abs(iy - jy) < 1e-9);
  assert.ok(zoomAt(t, 1e9, 0, 0).scale <= 32);
  assert.deepEqual(fit(100, 50, 800, 600), { scale: 4, x: 200, y: 200 });
});

test("a mask grows and shrinks by whole pixels, whatever the radius", () => {
  const w = 9, h = 7, mask = new Uint8Array(w * h);
  mask[3 * w + 4] = 1;  // one pixel in the middle
  const grown = growMask(mask, w, h, 2);
  assert.equal(grown.reduce((a, b) => a + b, 0), 25);  // a 5x5 square
  assert.equal(grown[1 * w + 2], 1);
  assert.equal(grown[0 * w + 4], 0);
  assert.deepEqual(growMask(grown, w, h, -2), Uint8Array.from(mask));  // shrinking takes it back
  assert.equal(growMask(mask, w, h, -1).reduce((a, b) => a + b, 0), 0);
});

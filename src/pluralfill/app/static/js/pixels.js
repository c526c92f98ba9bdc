// Pixel logic with no DOM in it (unit-tested under node): masks from uploads, layers as the API wants them,
// dirty rectangles, the spread of samples as a heat map.

// A painted layer (RGBA, painted where alpha > 0) as the API's picture: white where painted, black elsewhere.
// Returns the number of painted pixels.
export function layerToBinary(rgba, out) {
  let painted = 0;
  for (let i = 0; i < rgba.length; i += 4) {
    const v = rgba[i + 3] > 0 ? 255 : 0;
    painted += v > 0;
    out[i] = out[i + 1] = out[i + 2] = v;
    out[i + 3] = 255;
  }
  return painted;
}

// An uploaded mask (RGBA) as hole overlay pixels in `color`: white (luminance >= 128) is the hole; `invert`
// swaps hole and kept; `fromAlpha` reads the hole from transparency instead (alpha < 128 = missing).
export function holeFromImage(rgba, out, { invert = false, fromAlpha = false, color = [255, 0, 255] } = {}) {
  let holes = 0;
  for (let i = 0; i < rgba.length; i += 4) {
    let hole = fromAlpha ? rgba[i + 3] < 128 : 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2] >= 128;
    if (invert) hole = !hole;
    holes += hole;
    out[i] = color[0];
    out[i + 1] = color[1];
    out[i + 2] = color[2];
    out[i + 3] = hole ? 255 : 0;
  }
  return holes;
}

// Whether an RGBA image has any transparent pixel (a photo whose hole is its alpha channel).
export function hasTransparency(rgba) {
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] < 128) return true;
  return false;
}

// Rectangles {x, y, w, h}: grow one to hold a disc of radius r at (px, py); clip to the image.
export function grow(rect, px, py, r) {
  const x0 = Math.floor(px - r), y0 = Math.floor(py - r), x1 = Math.ceil(px + r), y1 = Math.ceil(py + r);
  if (!rect) return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
  const nx = Math.min(rect.x, x0), ny = Math.min(rect.y, y0);
  return { x: nx, y: ny, w: Math.max(rect.x + rect.w, x1) - nx, h: Math.max(rect.y + rect.h, y1) - ny };
}

export function clip(rect, width, height) {
  if (!rect) return null;
  const x = Math.max(0, rect.x), y = Math.max(0, rect.y);
  const w = Math.min(width, rect.x + rect.w) - x, h = Math.min(height, rect.y + rect.h) - y;
  return w > 0 && h > 0 ? { x, y, w, h } : null;
}

// A few stops of matplotlib's inferno, interpolated: 0 = black, 1 = pale yellow.
const INFERNO = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]];
export function inferno(t) {
  const s = Math.min(Math.max(t, 0), 1) * (INFERNO.length - 1), i = Math.min(Math.floor(s), INFERNO.length - 2), f = s - i;
  return INFERNO[i].map((a, k) => Math.round(a + f * (INFERNO[i + 1][k] - a)));
}

// Where the samples disagree: the standard deviation over samples of every pixel (mean of R, G, B), as an
// RGBA heat map scaled to its own maximum, transparent outside `hole` (a 0/1 array, one value a pixel).
// Returns the maximum in 0-255 units.
export function spreadMap(samples, hole, out) {
  const n = samples.length, pixels = hole.length;
  const spread = new Float32Array(pixels);
  let top = 0;
  for (let p = 0; p < pixels; p++) {
    if (!hole[p]) continue;
    let sd = 0;
    for (let c = 0; c < 3; c++) {
      let sum = 0, sq = 0;
      for (const s of samples) { const v = s[4 * p + c]; sum += v; sq += v * v; }
      const mean = sum / n;
      sd += Math.sqrt(Math.max(sq / n - mean * mean, 0)) / 3;
    }
    spread[p] = sd;
    if (sd > top) top = sd;
  }
  for (let p = 0; p < pixels; p++) {
    const [r, g, b] = inferno(top > 0 ? spread[p] / top : 0);
    out[4 * p] = r; out[4 * p + 1] = g; out[4 * p + 2] = b; out[4 * p + 3] = hole[p] ? 255 : 0;
  }
  return top;
}

// A mask (one byte a pixel, non-zero = on) grown by `r` pixels (a square of side 2r + 1 around every on pixel),
// or shrunk for r < 0: two passes of running counts, so the cost does not depend on r.
export function growMask(mask, width, height, r) {
  if (r === 0) return Uint8Array.from(mask, (v) => (v ? 1 : 0));
  const shrink = r < 0, k = Math.abs(r);
  let cur = Uint8Array.from(mask, (v) => ((v ? 1 : 0) ^ (shrink ? 1 : 0)));
  const pass = (src, n, m, at) => {  // along lines of length n, m of them; at(line, i) -> index
    const out = new Uint8Array(src.length);
    for (let line = 0; line < m; line++) {
      let count = 0;
      for (let i = 0; i < Math.min(k, n); i++) count += src[at(line, i)];
      for (let i = 0; i < n; i++) {
        if (i + k < n) count += src[at(line, i + k)];
        if (i - k - 1 >= 0) count -= src[at(line, i - k - 1)];
        out[at(line, i)] = count > 0 ? 1 : 0;
      }
    }
    return out;
  };
  cur = pass(cur, width, height, (y, x) => y * width + x);
  cur = pass(cur, height, width, (x, y) => y * width + x);
  return shrink ? cur.map((v) => v ^ 1) : cur;
}

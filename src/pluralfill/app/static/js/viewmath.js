// Zoom and pan as a transform {scale, x, y}: screen = image * scale + (x, y). No DOM (unit-tested under node).

export const MIN_SCALE = 0.02, MAX_SCALE = 32;

// The transform that shows a w x h image whole and centred in a viewport vw x vh (small photos up to 4x).
export function fit(w, h, vw, vh) {
  const scale = Math.min(vw / w, vh / h, 4);
  return { scale, x: (vw - w * scale) / 2, y: (vh - h * scale) / 2 };
}

// Zoom by `factor` keeping the image point under the screen point (px, py) where it is.
export function zoomAt(t, factor, px, py) {
  const scale = Math.min(Math.max(t.scale * factor, MIN_SCALE), MAX_SCALE);
  const k = scale / t.scale;
  return { scale, x: px - (px - t.x) * k, y: py - (py - t.y) * k };
}

export function toImage(t, sx, sy) {
  return [(sx - t.x) / t.scale, (sy - t.y) / t.scale];
}

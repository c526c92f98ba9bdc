// Painting on the image-sized layers: the hole (magenta, shown translucent) and the sketch lines (cyan).
// Tools: brush, eraser, rectangle, lasso, select (a click on an object; on the hole) and line (on the sketch layer). Every finished change
// goes onto the shared History as the pixels of its dirty rectangle before and after, so undo costs memory in
// proportion to what was painted, not to the photo (a 4000x3000 photo stays responsive).
import { clip, grow, growMask } from "./pixels.js";

const COLORS = { hole: "#ff00ff", lines: "#00e5ff" };

export class Painter {
  constructor(view, layers, overlay, history) {
    this.view = view;
    this.layers = layers; // {hole: canvas, lines: canvas}
    this.ctx = Object.fromEntries(Object.entries(layers).map(([k, c]) => [k, c.getContext("2d", { willReadFrequently: true })]));
    this.backup = {}; // each layer as of its last committed change: the "before" of the next one
    this.overlay = overlay; // an SVG over the layers: the brush cursor and the rectangle / lasso outlines
    this.history = history;
    this.tool = "brush";
    this.size = 40;
    this.lineWidth = 3;
    this.enabled = false;
    this.onchange = () => {};
    const el = view.el;
    el.addEventListener("pointerdown", (e) => this.down(e));
    el.addEventListener("pointermove", (e) => this.move(e));
    window.addEventListener("pointerup", (e) => this.up(e));
    el.addEventListener("pointerleave", () => this.cursor(null));
  }

  // A new photo: layers of its size, empty.
  reset(width, height) {
    for (const [name, canvas] of Object.entries(this.layers)) {
      canvas.width = width;
      canvas.height = height;
      const b = document.createElement("canvas");
      b.width = width;
      b.height = height;
      this.backup[name] = b;
    }
    this.overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.overlay.setAttribute("width", width);
    this.overlay.setAttribute("height", height);
    this.enabled = true;
  }

  layerName() {
    return this.tool === "line" ? "lines" : "hole";
  }

  down(e) {
    if (!this.enabled || e.button !== 0 || this.view.panning || this.view.spaceHeld) return;
    e.preventDefault();
    const p = this.view.imagePoint(e);
    this.active = { layer: this.layerName(), points: [p], last: p, dirty: null };
    if (this.tool === "brush" || this.tool === "eraser" || this.tool === "line") this.dab(p, p);
    this.outline();
  }

  move(e) {
    const p = this.view.imagePoint(e);
    this.cursor(p);
    if (!this.active) return;
    const a = this.active;
    if (this.tool === "brush" || this.tool === "eraser" || this.tool === "line") this.dab(a.last, p);
    a.points.push(p);
    a.last = p;
    this.outline();
  }

  up() {
    const a = this.active;
    if (!a) return;
    this.active = null;
    if (this.tool === "select") {  // the server finds the object: under a click, or inside a dragged box
      this.overlay.querySelector(".outline")?.remove();
      const [p, q] = [a.points[0], a.last];
      const box = Math.abs(q[0] - p[0]) > 6 && Math.abs(q[1] - p[1]) > 6
        ? [Math.min(p[0], q[0]), Math.min(p[1], q[1]), Math.abs(q[0] - p[0]), Math.abs(q[1] - p[1])] : null;
      return void this.onselect?.(p, box);
    }
    const c = this.ctx[a.layer];
    c.globalCompositeOperation = "source-over";
    c.fillStyle = COLORS[a.layer];
    if (this.tool === "rect") {
      const [p, q] = [a.points[0], a.last];
      const r = { x: Math.min(p[0], q[0]), y: Math.min(p[1], q[1]), w: Math.abs(q[0] - p[0]), h: Math.abs(q[1] - p[1]) };
      c.fillRect(r.x, r.y, r.w, r.h);
      a.dirty = { x: Math.floor(r.x) - 1, y: Math.floor(r.y) - 1, w: Math.ceil(r.w) + 3, h: Math.ceil(r.h) + 3 };
    } else if (this.tool === "lasso" && a.points.length > 2) {
      c.beginPath();
      a.points.forEach(([x, y], i) => (i ? c.lineTo(x, y) : c.moveTo(x, y)));
      c.closePath();
      c.fill();
      for (const [x, y] of a.points) a.dirty = grow(a.dirty, x, y, 2);
    }
    this.overlay.querySelector(".outline")?.remove();
    this.commit(a.layer, a.dirty);
  }

  // One segment of a stroke, growing the stroke's dirty rectangle.
  dab(p, q) {
    const a = this.active, c = this.ctx[a.layer];
    const width = this.tool === "line" ? this.lineWidth : this.size;
    c.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    c.strokeStyle = COLORS[a.layer];
    c.lineCap = c.lineJoin = "round";
    c.lineWidth = width;
    c.beginPath();
    c.moveTo(p[0], p[1]);
    c.lineTo(q[0], q[1]);
    c.stroke();
    a.dirty = grow(grow(a.dirty, p[0], p[1], width / 2 + 2), q[0], q[1], width / 2 + 2);
  }

  // Put the change of `rect` on the history: its pixels before (from the backup) and after.
  commit(layer, rect) {
    const canvas = this.layers[layer];
    rect = clip(rect, canvas.width, canvas.height);
    if (!rect) return;
    const backup = this.backup[layer].getContext("2d", { willReadFrequently: true });
    const before = backup.getImageData(rect.x, rect.y, rect.w, rect.h);
    const after = this.ctx[layer].getImageData(rect.x, rect.y, rect.w, rect.h);
    backup.putImageData(after, rect.x, rect.y);
    const put = (pixels) => () => {
      this.ctx[layer].putImageData(pixels, rect.x, rect.y);
      backup.putImageData(pixels, rect.x, rect.y);
      this.onchange();
    };
    this.history.push({ undo: put(before), redo: put(after), bytes: 8 * rect.w * rect.h, kind: layer });
    this.onchange();
  }

  // Drop the stroke in progress, its pixels back as they were (a second finger makes it a pinch).
  cancel() {
    const a = this.active;
    if (!a) return;
    this.active = null;
    const canvas = this.layers[a.layer];
    this.ctx[a.layer].clearRect(0, 0, canvas.width, canvas.height);
    this.ctx[a.layer].drawImage(this.backup[a.layer], 0, 0);
    this.overlay.querySelector(".outline")?.remove();
  }

  // The hole grown (r > 0) or shrunk (r < 0) by r pixels, as one undoable change.
  growHole(r) {
    const canvas = this.layers.hole, { width, height } = canvas;
    const px = this.ctx.hole.getImageData(0, 0, width, height), d = px.data;
    const mask = new Uint8Array(width * height);
    for (let i = 0; i < mask.length; i++) mask[i] = d[4 * i + 3] > 0 ? 1 : 0;
    const out = growMask(mask, width, height, r);
    for (let i = 0; i < out.length; i++) {
      d[4 * i] = 255; d[4 * i + 1] = 0; d[4 * i + 2] = 255; d[4 * i + 3] = out[i] ? 255 : 0;
    }
    this.replace("hole", px);
  }

  // Add a selection (a picture the photo's size, white = selected) to the hole, as one undoable change.
  addSelection(picture) {
    const canvas = this.layers.hole, tmp = document.createElement("canvas");
    tmp.width = canvas.width;
    tmp.height = canvas.height;
    const t = tmp.getContext("2d", { willReadFrequently: true });
    t.drawImage(picture, 0, 0, canvas.width, canvas.height);
    const px = t.getImageData(0, 0, canvas.width, canvas.height), d = px.data;
    for (let i = 0; i < d.length; i += 4) {
      const on = d[i] > 127;
      d[i] = 255; d[i + 1] = 0; d[i + 2] = 255; d[i + 3] = on ? 255 : 0;
    }
    t.putImageData(px, 0, 0);
    this.ctx.hole.globalCompositeOperation = "source-over";
    this.ctx.hole.drawImage(tmp, 0, 0);
    this.commit("hole", { x: 0, y: 0, w: canvas.width, h: canvas.height });
  }

  // Replace a whole layer's pixels (clear, an uploaded mask) as one undoable change.
  replace(layer, imageData) {
    const canvas = this.layers[layer];
    this.ctx[layer].clearRect(0, 0, canvas.width, canvas.height);
    if (imageData) this.ctx[layer].putImageData(imageData, 0, 0);
    this.commit(layer, { x: 0, y: 0, w: canvas.width, h: canvas.height });
  }

  // Both layers as they are now, and back (a round of "use as input" keeps them).
  snapshot() {
    return Object.fromEntries(Object.entries(this.layers).map(([k, c]) => [k, this.ctx[k].getImageData(0, 0, c.width, c.height)]));
  }

  restore(snapshot) {
    for (const [k, pixels] of Object.entries(snapshot)) {
      this.ctx[k].putImageData(pixels, 0, 0);
      this.backup[k].getContext("2d").putImageData(pixels, 0, 0);
    }
    this.onchange();
  }

  cursor(p) {
    let ring = this.overlay.querySelector(".cursor");
    if (!p || !this.enabled || ["rect", "lasso", "select"].includes(this.tool)) return ring?.remove();
    if (!ring) {
      ring = document.createElementNS("http://www.w3.org/2000/svg", "circle");
      ring.classList.add("cursor");
      this.overlay.appendChild(ring);
    }
    ring.setAttribute("cx", p[0]);
    ring.setAttribute("cy", p[1]);
    ring.setAttribute("r", (this.tool === "line" ? this.lineWidth : this.size) / 2);
  }

  outline() {
    const a = this.active;
    if (!a || (this.tool !== "rect" && this.tool !== "lasso" && this.tool !== "select")) return;
    let shape = this.overlay.querySelector(".outline");
    const kind = this.tool === "lasso" ? "polygon" : "rect";
    if (!shape || shape.tagName !== kind) {
      shape?.remove();
      shape = document.createElementNS("http://www.w3.org/2000/svg", kind);
      shape.classList.add("outline");
      this.overlay.appendChild(shape);
    }
    if (kind === "rect") {
      const [p, q] = [a.points[0], a.last];
      shape.setAttribute("x", Math.min(p[0], q[0]));
      shape.setAttribute("y", Math.min(p[1], q[1]));
      shape.setAttribute("width", Math.abs(q[0] - p[0]));
      shape.setAttribute("height", Math.abs(q[1] - p[1]));
    } else {
      shape.setAttribute("points", a.points.map((p) => p.join(",")).join(" "));
    }
  }
}

// A zoomable, pannable view of an image-sized stack of layers: wheel or pinch zooms about the pointer,
// space+drag, the middle button or two fingers pan. Several views can share one transform (the compare
// view shows both images at the same zoom because they sit in one stack).
import { fit, toImage, zoomAt } from "./viewmath.js";

export class Viewport {
  constructor(element, stack) {
    this.el = element;
    this.stack = stack;
    this.t = { scale: 1, x: 0, y: 0 };
    this.size = [1, 1];
    this.spaceHeld = false;
    this.pointers = new Map();  // the pointers panning or pinching now
    this.touches = new Map();  // every finger down, so that a second one turns a stroke into a pinch
    this.onchange = () => {};
    element.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = element.getBoundingClientRect();
      this.zoom(Math.exp(-e.deltaY * (e.ctrlKey ? 0.01 : 0.0015)), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    element.addEventListener("pointerdown", (e) => this.down(e), true);
    element.addEventListener("pointermove", (e) => this.move(e), true);
    for (const kind of ["pointerup", "pointercancel"]) element.addEventListener(kind, (e) => this.up(e), true);
  }

  // Pan when space is held, with the middle button, or with two touches (which also pinch).
  wantsPan(e) {
    return this.spaceHeld || e.button === 1 || (e.pointerType === "touch" && this.touches.size >= 2);
  }

  down(e) {
    if (e.pointerType === "touch") this.touches.set(e.pointerId, [e.clientX, e.clientY]);
    if (!this.wantsPan(e) && !this.panning) return;
    if (e.pointerType === "touch" && !this.panning) {  // the second finger: both pan and pinch, the stroke is void
      for (const [id, p] of this.touches) this.pointers.set(id, p);
      this.onpinch?.();
    }
    this.pointers.set(e.pointerId, [e.clientX, e.clientY]);
    this.panning = true;
    try { this.el.setPointerCapture?.(e.pointerId); } catch { /* a pointer already gone */ }
    this.el.classList.add("panning");
    e.stopPropagation();
    e.preventDefault();
  }

  move(e) {
    if (!this.panning || !this.pointers.has(e.pointerId)) return;
    e.stopPropagation();
    const before = [...this.pointers.values()];
    this.pointers.set(e.pointerId, [e.clientX, e.clientY]);
    const after = [...this.pointers.values()];
    const centre = (ps) => [ps.reduce((a, p) => a + p[0], 0) / ps.length, ps.reduce((a, p) => a + p[1], 0) / ps.length];
    const [bx, by] = centre(before), [ax, ay] = centre(after);
    this.t = { ...this.t, x: this.t.x + ax - bx, y: this.t.y + ay - by };
    if (after.length === 2) {
      const dist = (ps) => Math.hypot(ps[0][0] - ps[1][0], ps[0][1] - ps[1][1]) || 1;
      const r = this.el.getBoundingClientRect();
      this.t = zoomAt(this.t, dist(after) / dist(before), ax - r.left, ay - r.top);
    }
    this.apply();
  }

  up(e) {
    this.touches.delete(e.pointerId);
    if (!this.pointers.delete(e.pointerId)) return;
    if (this.pointers.size === 0) {
      this.panning = false;
      this.el.classList.remove("panning");
    }
  }

  setSize(w, h) {
    this.size = [w, h];
    this.stack.style.width = `${w}px`;
    this.stack.style.height = `${h}px`;
    this.fit();
  }

  fit() {
    const r = this.el.getBoundingClientRect();
    this.t = fit(this.size[0], this.size[1], r.width || 800, r.height || 600);
    this.apply();
  }

  zoom(factor, px, py) {
    if (px === undefined) {
      const r = this.el.getBoundingClientRect();
      [px, py] = [r.width / 2, r.height / 2];
    }
    this.t = zoomAt(this.t, factor, px, py);
    this.apply();
  }

  set(t) {
    this.t = { ...t };
    this.apply();
  }

  apply() {
    this.stack.style.transform = `translate(${this.t.x}px, ${this.t.y}px) scale(${this.t.scale})`;
    this.el.style.setProperty("--scale", this.t.scale);
    this.onchange(this.t);
  }

  // The image pixel under a pointer event.
  imagePoint(e) {
    const r = this.el.getBoundingClientRect();
    return toImage(this.t, e.clientX - r.left, e.clientY - r.top);
  }
}

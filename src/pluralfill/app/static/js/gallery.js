// The samples of a run as they arrive (a card each, with its own progress), and the large viewer: one image,
// or two (any samples, or a sample and the input) compared with a slider or a toggle at the same zoom.
import { Viewport } from "./view.js";

export class Gallery {
  constructor(element, { onUse, onShow }) {
    this.el = element;
    this.onUse = onUse;
    this.onShow = onShow;
    this.samples = []; // {index, url, blob}
    this.input = null; // {url}: the photo of the run
  }

  start(count, inputURL) {
    for (const s of this.samples) URL.revokeObjectURL(s.url);
    this.samples = [];
    this.input = { url: inputURL };
    this.el.innerHTML = "";
    this.cards = [];
    for (let i = 0; i < count; i++) {
      const fig = document.createElement("figure");
      fig.dataset.index = i;
      fig.innerHTML = `<div class="thumb">…</div><div class="sample-bar"><span></span></div>
        <figcaption>#${i}</figcaption>`;
      this.el.appendChild(fig);
      this.cards.push(fig);
    }
  }

  // A new session: no cards, no samples.
  clear() {
    for (const s of this.samples) URL.revokeObjectURL(s?.url);
    this.samples = [];
    this.cards = [];
    this.input = null;
    this.el.innerHTML = "";
  }

  progress(index, fraction) {
    const bar = this.cards?.[index]?.querySelector(".sample-bar span");
    if (bar) bar.style.width = `${Math.round(fraction * 100)}%`;
  }

  add(index, pngBase64) {
    const bytes = Uint8Array.from(atob(pngBase64), (c) => c.charCodeAt(0));
    const blob = new Blob([bytes], { type: "image/png" });
    const sample = { index, blob, url: URL.createObjectURL(blob) };
    this.samples[index] = sample;
    const fig = this.cards[index];
    this.progress(index, 1);
    fig.classList.add("arrived");
    fig.querySelector(".thumb").innerHTML = `<img class="result" src="${sample.url}" alt="sample ${index}" title="Click to see it large and compare">`;
    fig.querySelector("figcaption").innerHTML = `#${index}
      <a class="png" href="${sample.url}" download="sample${index}.png" title="Download this sample">PNG</a>
      <button class="show" title="Show this fill on the canvas (hold O for the original)">On canvas</button>
      <button class="use" title="Take this sample as the new photo, to refine another region">Use as input</button>`;
    fig.querySelector("img").onclick = () => this.viewer.open(index);
    fig.querySelector(".use").onclick = () => this.onUse(sample);
    fig.querySelector(".show").onclick = () => this.onShow?.(sample);
    return sample;
  }

  // Cards whose sample never came (a cancelled run) go.
  prune() {
    this.cards?.forEach((fig, i) => { if (!this.samples[i]) fig.remove(); });
  }
}

export class Viewer {
  constructor(dialog, gallery, { onUse }) {
    this.dialog = dialog;
    this.gallery = gallery;
    gallery.viewer = this;
    this.onUse = onUse;
    const $ = (id) => dialog.querySelector(`#${id}`);
    this.$ = $;
    this.view = new Viewport($("view-stage"), $("view-stack"));
    this.view.wantsPan = (e) => e.button === 0 || e.button === 1;
    this.mode = "single";
    this.flipped = false;
    $("view-a").onchange = $("view-b").onchange = (e) => { e.target.blur(); this.show(); }; // keys go back to the viewer
    dialog.querySelectorAll("#view-modes button").forEach((b) => (b.onclick = () => this.setMode(b.dataset.mode)));
    $("view-split").oninput = () => this.show();
    $("view-flip").onclick = () => this.flip();
    $("view-close").onclick = () => dialog.close();
    $("view-use").onclick = () => {
      const s = this.current();
      if (s) { dialog.close(); this.onUse(s); }
    };
    window.addEventListener("keydown", (e) => {
      if (!dialog.open || e.target.tagName === "SELECT") return; // a select's own keys pick an option
      if (e.key === "t" || e.key === "T") this.flip();
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") this.step(e.key === "ArrowRight" ? 1 : -1);
    });
  }

  choices() {
    return [["input", "the input"], ...this.gallery.samples.filter(Boolean).map((s) => [String(s.index), `sample #${s.index}`])];
  }

  source(key) {
    return key === "input" ? this.gallery.input : this.gallery.samples[+key];
  }

  current() {
    const key = this.mode === "toggle" && this.flipped ? this.$("view-b").value : this.$("view-a").value;
    return key === "input" ? null : this.gallery.samples[+key];
  }

  open(index, compareWith = "input") {
    const options = this.choices().map(([v, t]) => `<option value="${v}">${t}</option>`).join("");
    this.$("view-a").innerHTML = this.$("view-b").innerHTML = options;
    this.$("view-a").value = String(index);
    this.$("view-b").value = compareWith;
    if (!this.dialog.open) this.dialog.showModal();
    const img = this.$("view-img-a");
    img.onload = () => { this.view.setSize(img.naturalWidth, img.naturalHeight); img.onload = null; };
    this.show();
  }

  setMode(mode) {
    this.mode = mode;
    this.flipped = false;
    this.dialog.querySelectorAll("#view-modes button").forEach((b) => b.classList.toggle("on", b.dataset.mode === mode));
    this.$("view-split").hidden = mode !== "slider";
    this.$("view-flip").hidden = mode !== "toggle";
    this.show();
  }

  flip() {
    if (this.mode !== "toggle") this.setMode("toggle");
    this.flipped = !this.flipped;
    this.show();
  }

  step(delta) {
    const keys = this.choices().map(([v]) => v).filter((v) => v !== "input");
    const at = keys.indexOf(this.$("view-a").value);
    if (keys.length) this.open(+keys[(at + delta + keys.length) % keys.length], this.$("view-b").value);
  }

  // Image A below, image B above it: hidden (single), clipped to the right of the split (slider), or shown
  // alone when flipped (toggle). Both sit in one stack, so they share the zoom.
  show() {
    const a = this.source(this.$("view-a").value), b = this.source(this.$("view-b").value);
    const imgA = this.$("view-img-a"), imgB = this.$("view-img-b");
    imgA.src = a?.url || "";
    imgB.src = b?.url || "";
    imgB.hidden = this.mode === "single" || (this.mode === "toggle" && !this.flipped);
    imgB.style.clipPath = this.mode === "slider" ? `inset(0 0 0 ${this.$("view-split").value}%)` : "none";
    const shown = this.current();
    this.$("view-use").disabled = !shown;
    const link = this.$("view-download");
    link.hidden = !shown;
    if (shown) { link.href = shown.url; link.download = `sample${shown.index}.png`; }
  }
}

// The page: a photo and its hole (paint.js) in a zoomable view (view.js), the method and its options as
// typed fields generated from /api/methods, a streamed run with per-sample progress (api.js), the samples,
// the viewer and the rounds of "use as input" (gallery.js), all on one undo history (history.js).
import * as api from "./api.js";
import { Gallery, Viewer } from "./gallery.js";
import { History } from "./history.js";
import { Painter } from "./paint.js";
import { hasTransparency, holeFromImage, layerToBinary, spreadMap } from "./pixels.js";
import { estimate, formatSeconds } from "./stream.js";
import { Viewport } from "./view.js";

const $ = (id) => document.getElementById(id);
const history = new History();
const view = new Viewport($("stage"), $("stack"));
const painter = new Painter(view, { hole: $("hole"), lines: $("lines") }, $("overlay"), history);
view.onpinch = () => painter.cancel();
let methods = [], photo = null, running = null, round = 0, uncertainty = {};
const gallery = new Gallery($("gallery"), { onUse: useAsInput, onShow: (s) => showOnCanvas(s) });
const viewer = new Viewer($("viewer"), gallery, { onUse: useAsInput });
window.pluralfill = { history, view, painter, gallery, viewer }; // for the browser tests and the console

// ------------------------------------------------------------------ photo

// A photo as {blob, url, width, height}; resolves once it is decoded.
function loadPhoto(blob) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(blob), img = new Image();
    img.onload = () => resolve({ blob, url, width: img.naturalWidth, height: img.naturalHeight, img });
    img.onerror = () => reject(new Error("this file is not an image the browser can read"));
    img.src = url;
  });
}

function showPhoto(p) {
  photo = p;
  $("photo").src = p.url;
  $("stage").classList.remove("empty");
}

// A new photo is a new session: the runs of the photo before stay reachable under "Earlier photos", never mixed
// with this one's.
function newSession(name) {
  if (photo && !$("zip").hidden) {
    const item = document.createElement("li");
    item.innerHTML = `<a href="${$("zip").href}" download>${photo.name ?? "photo"}: its last run (zip)</a>`;
    $("earlier").querySelector("ul").prepend(item);
    $("earlier").hidden = false;
  }
  if (running) cancel();
  gallery.clear();
  hideResult();
  $("zip").hidden = true;
  markBadFields({});
  status("", 0);
  uncertainty = {};
  showUncertaintyChoices();
  return name;
}

async function openPhoto(file) {
  if (!file) return;
  $("error").textContent = "";
  try {
    const p = await loadPhoto(file);
    p.name = newSession(file.name);
    showPhoto(p);
    painter.reset(p.width, p.height);
    view.setSize(p.width, p.height);
    history.clear();
    round = 0;
    setBrush(Math.max(4, Math.round(Math.min(p.width, p.height) / 16)));
    $("alpha").hidden = !hasTransparency(pixelsOf(p.img, p.width, p.height).data);
    showRound();
  } catch (e) {
    $("error").textContent = e.message;
  }
}

function pixelsOf(img, w, h) {
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0, w, h);
  return ctx.getImageData(0, 0, w, h);
}

$("file").onchange = (e) => openPhoto(e.target.files[0]);
$("stage").addEventListener("dragover", (e) => e.preventDefault());
$("stage").addEventListener("drop", (e) => { e.preventDefault(); openPhoto(e.dataTransfer.files[0]); });

// An uploaded mask, or the photo's transparency, becomes the hole (one undoable change).
async function holeFrom(img, options) {
  const source = pixelsOf(img, photo.width, photo.height);
  const out = new ImageData(photo.width, photo.height);
  holeFromImage(source.data, out.data, options);
  painter.replace("hole", out);
}
$("maskfile").onchange = async (e) => {
  if (!photo || !e.target.files[0]) return void ($("error").textContent = "open a photo first");
  try {
    const m = await loadPhoto(e.target.files[0]);
    await holeFrom(m.img, { invert: $("invert").checked });
  } catch (err) { $("error").textContent = `mask: ${err.message}`; }
  e.target.value = "";
};
$("alpha").onclick = () => holeFrom(photo.img, { fromAlpha: true });

// ------------------------------------------------------------------ tools

function setTool(tool) {
  painter.tool = tool;
  document.querySelectorAll("#tools button").forEach((b) => {
    b.classList.toggle("on", b.dataset.tool === tool);
    b.setAttribute("aria-pressed", String(b.dataset.tool === tool));  // which tool is selected, for every reader
  });
  $("linewidth-label").hidden = tool !== "line";
}
function setBrush(size) {
  painter.size = Math.min(Math.max(size, 1), 400);
  $("brush").value = painter.size;
  $("brush-value").textContent = painter.size;
}
document.querySelectorAll("#tools button").forEach((b) => (b.onclick = () => setTool(b.dataset.tool)));
$("brush").oninput = () => setBrush(+$("brush").value);
$("linewidth").oninput = () => (painter.lineWidth = +$("linewidth").value);
$("undo").onclick = () => history.undo();
$("redo").onclick = () => history.redo();
$("clear").onclick = () => photo && painter.replace(painter.layerName(), null);
$("grow").onclick = () => photo && painter.growHole(4);
$("shrink").onclick = () => photo && painter.growHole(-4);
$("help").onclick = () => $("shortcuts").showModal();
$("run-phone").onclick = () => fill();
$("sheet-toggle").onclick = () => {  // the settings sheet of a phone
  const open = $("controls").classList.toggle("open");
  $("sheet-toggle").setAttribute("aria-expanded", String(open));
};
let lastHole = null;  // the hole the last Fill sent, as pixels of the hole layer
$("last-hole").onclick = () => photo && lastHole && lastHole.width === photo.width && painter.replace("hole", lastHole);

// the fill on the canvas (or the first one): what Ctrl+S saves and Ctrl+C copies
function shownSample() {
  return gallery.samples[Number($("stage").dataset.shown ?? 0)] ?? null;
}
function saveShown() {
  const s = shownSample();
  if (!s) return;
  const a = document.createElement("a");
  a.href = s.url;
  a.download = `fill${s.index}.png`;
  a.click();
}
async function copyShown() {
  const s = shownSample();
  if (!s || !navigator.clipboard?.write) return;
  await navigator.clipboard.write([new ClipboardItem({ "image/png": s.blob })]);
  status("copied the fill on the canvas");
}
window.addEventListener("paste", (e) => {  // Ctrl+V: a photo from the clipboard
  const item = [...(e.clipboardData?.items ?? [])].find((i) => i.type.startsWith("image/"));
  if (item) { e.preventDefault(); openPhoto(item.getAsFile()); }
});
$("fit").onclick = () => view.fit();
$("zoom-in").onclick = () => view.zoom(1.25);
$("zoom-out").onclick = () => view.zoom(0.8);
new ResizeObserver(() => photo && view.fit()).observe($("stage"));  // the view refits whenever the layout changes

// The chosen fill on the canvas, at the view's zoom; hold O to see the original (and the hole) instead.
function showOnCanvas(sample) {
  $("result").src = sample.url;
  $("result").hidden = false;
  $("stage").classList.add("showing-result");
  $("stage").dataset.shown = sample.index;
}
function hideResult() {
  $("result").hidden = true;
  $("stage").classList.remove("showing-result");
  delete $("stage").dataset.shown;
}
$("stage").addEventListener("pointerdown", () => hideResult(), true);  // painting again: back to the photo and its hole

// the theme: the system's until the user picks one here
const savedTheme = localStorage.getItem("pluralfill-theme");
if (savedTheme) document.documentElement.dataset.theme = savedTheme;
$("theme").onclick = () => {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "light" : "dark";
  localStorage.setItem("pluralfill-theme", document.documentElement.dataset.theme);
};

// Select: the server turns a click on an object into a hole (GrabCut, no model), added to the hole as one undo.
painter.onselect = async ([x, y], box) => {
  if (!photo) return;
  status(box ? "selecting the object in the box…" : "selecting the object under the click…");
  const form = new FormData();
  form.append("image", photo.blob, "image");
  form.append("x", Math.round(box ? box[0] : x));
  form.append("y", Math.round(box ? box[1] : y));
  if (box) { form.append("w", Math.round(box[2])); form.append("h", Math.round(box[3])); }
  const r = await fetch("/api/select", { method: "POST", body: form });
  if (!r.ok) return void ($("error").textContent = (await r.json().catch(() => ({}))).detail ?? `${r.status}`);
  painter.addSelection(await createImageBitmap(await r.blob()));
  status("selected: the hole covers the object (Ctrl+Z takes it back; the brush and eraser refine it)");
};

const KEYS = { b: () => setTool("brush"), e: () => setTool("eraser"), r: () => setTool("rect"), l: () => setTool("lasso"),
  m: () => setTool("select"), ".": () => $("grow").click(), ",": () => $("shrink").click(), h: () => $("last-hole").click(),
  s: () => takesSketch() && setTool("line"), f: () => view.fit(), "[": () => setBrush(painter.size - Math.max(1, painter.size >> 3)),
  "]": () => setBrush(painter.size + Math.max(1, painter.size >> 3)), "+": () => view.zoom(1.25), "-": () => view.zoom(0.8) };
window.addEventListener("keydown", (e) => {
  if ($("viewer").open || $("shortcuts").open) return;
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName) && e.target.type !== "range" && e.target.type !== "checkbox";
  if (e.key === "Escape" && running) return void cancel();
  if (typing) return;
  if (e.key === "Enter" && ["BUTTON", "A", "SUMMARY"].includes(e.target.tagName)) return;  // the focused control's own Enter
  if (e.key.toLowerCase() === "o" && !$("result").hidden) return void $("stage").classList.add("original");
  if (e.code === "Space") { view.spaceHeld = true; $("stage").classList.add("space"); e.preventDefault(); return; }
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); return void (e.shiftKey ? history.redo() : history.undo()); }
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "y") { e.preventDefault(); return void history.redo(); }
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") { e.preventDefault(); return void saveShown(); }
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "c" && shownSample()) { e.preventDefault(); return void copyShown(); }
  if (e.key === "?") return void $("shortcuts").showModal();
  if (e.key === "Enter") return void fill();
  if (!e.ctrlKey && !e.metaKey && !e.altKey && KEYS[e.key.toLowerCase()]) KEYS[e.key.toLowerCase()]();
});
window.addEventListener("keyup", (e) => {
  if (e.key.toLowerCase() === "o") $("stage").classList.remove("original");
  if (e.code === "Space") { view.spaceHeld = false; $("stage").classList.remove("space"); }
});

// ------------------------------------------------------------------ methods and their options

function method() { return methods.find((m) => m.name === $("method").value); }
// the guide drawn on the page's line layer: the method's first picture that is drawn (lines or grey values)
function drawnGuide(m = method()) { return m?.guides?.find((g) => g.kind !== "labels") ?? null; }
function takesSketch() { return !!drawnGuide(); }

async function loadMethods() {
  methods = await api.methods();
  const here = methods.filter((m) => m.available), missing = methods.filter((m) => !m.available);
  const label = (m) => `${m.name}${m.kind === "bundled" ? " (demo)" : ""}${m.deterministic ? " (one result)" : ""}`;
  const note = (m) => (m.note ? ` title="${m.note.replaceAll('"', "&quot;")}"` : "");
  $("method").innerHTML = here.map((m) => `<option value="${m.name}"${note(m)}>${label(m)}</option>`).join("")
    + (missing.length ? `<optgroup label="needs weights">${missing.map((m) => `<option disabled title="${m.reason}">${m.name}</option>`).join("")}</optgroup>` : "");
  $("unavailable").hidden = !missing.length;
  $("unavailable").querySelector("ul").innerHTML = missing.map((m) => `<li><b>${m.name}</b>: ${m.reason}</li>`).join("");
  showOptions();
}

const HIDDEN_OPTIONS = new Set(["trace"]); // pictures the page does not show; the CLI writes them

function field(o) {
  const id = `opt-${o.name}`, label = o.name.replaceAll("_", " ");
  const shown = o.default === null ? "" : String(o.default);
  let input;
  if (o.choices) {
    input = `<select id="${id}">${o.nullable ? `<option value="">default</option>` : ""}${o.choices.map((c) => `<option${String(c) === shown ? " selected" : ""}>${c}</option>`).join("")}</select>`;
  } else if (o.type === "bool") {
    input = `<input id="${id}" type="checkbox"${o.default ? " checked" : ""}>`;
  } else if (o.type === "int" || o.type === "float") {
    const bound = (k, v, exclusive) => (v === null || v === undefined || exclusive ? "" : ` ${k}="${v}"`);
    input = `<input id="${id}" type="number" step="${o.step ?? "any"}"${bound("min", o.min, o.min_exclusive)}${bound("max", o.max, o.max_exclusive)} value="${shown}" placeholder="${o.nullable ? "default" : ""}">`;
  } else {
    input = `<input id="${id}" type="text" value="${shown}" placeholder="default">`;
  }
  const hint = `${o.help ? `${o.help}. ` : ""}${o.name}, default: ${shown || "the method's own"}`.replaceAll('"', "&quot;");
  return `<label data-option="${o.name}" data-type="${o.type}" data-default="${shown}" title="${hint}">${label} ${input}<small class="bad-field"></small></label>`;
}

// an upload for each guide the page does not draw (a label map)
function guideField(g) {
  return `<label data-guide="${g.name}" title="${g.help.replaceAll('"', "&quot;")}">${g.name.replaceAll("_", " ")} <input type="file" accept="image/png"></label>`;
}

function showOptions() {
  const m = method();
  if (!m) return;
  $("options").innerHTML = m.options.filter((o) => !HIDDEN_OPTIONS.has(o.name)).map(field).join("")
    + (m.guides ?? []).filter((g) => g !== drawnGuide(m)).map(guideField).join("");
  $("precision").innerHTML = m.precisions.map((p) => `<option value="${p.name}"${p.available ? "" : ` disabled title="${p.reason}"`}>${p.name}${p.available ? "" : " (not here)"}</option>`).join("");
  $("precision-label").hidden = m.precisions.filter((p) => p.available).length < 2;
  $("n").disabled = m.deterministic;
  $("method-note").textContent = m.deterministic ? "A deterministic fill: one result, whatever the number of samples." : "";
  document.querySelector('[data-tool="line"]').hidden = !drawnGuide(m);
  $("lines").hidden = !drawnGuide(m);
  if (!drawnGuide(m) && painter.tool === "line") setTool("brush");
}
$("method").onchange = showOptions;

// The options the user set: the fields whose value is not the default.
function chosenOptions() {
  const options = {};
  for (const label of $("options").querySelectorAll("label[data-option]")) {
    const input = label.querySelector("input,select"), type = label.dataset.type;
    const value = input.type === "checkbox" ? String(input.checked) : input.value;
    if (value === "" || value === label.dataset.default || (type === "bool" && value === String(label.dataset.default === "true"))) continue;
    options[label.dataset.option] = type === "int" || type === "float" ? Number(value) : type === "bool" ? value === "true" : value;
  }
  return options;
}

// ------------------------------------------------------------------ a run

function layerBlob(name) {
  const canvas = painter.layers[name], out = document.createElement("canvas");
  out.width = canvas.width; out.height = canvas.height;
  const o = out.getContext("2d"), m = o.createImageData(canvas.width, canvas.height);
  const painted = layerToBinary(painter.ctx[name].getImageData(0, 0, canvas.width, canvas.height).data, m.data);
  o.putImageData(m, 0, 0);
  return new Promise((resolve) => out.toBlob((blob) => resolve(painted ? blob : null), "image/png"));
}

function status(text, fraction) {
  $("progress").querySelector(".text").textContent = text;
  if (fraction !== undefined) $("progress").querySelector(".bar span").style.width = `${Math.round(fraction * 100)}%`;
}

// each refused option named beside its field
function markBadFields(fields) {
  for (const label of $("options").querySelectorAll("label[data-option]")) {
    const problem = fields[label.dataset.option];
    label.classList.toggle("bad", !!problem);
    label.querySelector(".bad-field").textContent = problem ?? "";
  }
}

// The option fields the page can check itself (their declared min, max and step): every bad one named beside it.
function fieldProblems() {
  const problems = {};
  for (const label of $("options").querySelectorAll("label[data-option]")) {
    const input = label.querySelector("input");
    if (input && !input.checkValidity()) problems[label.dataset.option] = input.validationMessage;
  }
  return problems;
}

async function fill() {
  $("error").textContent = "";
  markBadFields({});
  const problems = fieldProblems();
  if (Object.keys(problems).length) {
    markBadFields(problems);
    return void ($("error").textContent = `check ${Object.keys(problems).join(", ")}: nothing was run`);
  }
  if (!photo) return void ($("error").textContent = "open a photo first");
  const hole = await layerBlob("hole");
  if (!hole) return void ($("error").textContent = "paint the hole first: what should be filled");
  lastHole = painter.ctx.hole.getImageData(0, 0, photo.width, photo.height);
  if (running) await cancel(); // the new job starts as soon as the old one stops
  const m = method(), form = new FormData();
  form.append("image", photo.blob, "image");
  form.append("mask", hole, "mask.png");
  const drawn = drawnGuide(m), lines = drawn ? await layerBlob("lines") : null;
  if (lines) form.append("guides", lines, `${drawn.name}.png`);
  for (const label of $("options").querySelectorAll("label[data-guide]")) {
    const file = label.querySelector("input").files[0];
    if (file) form.append("guides", file, `${label.dataset.guide}.png`);
  }
  form.append("method", m.name);
  form.append("num_samples", $("n").value);
  if (!$("seed-lock").checked || $("seed").value === "") $("seed").value = Math.floor(Math.random() * 2 ** 31);
  form.append("seed", $("seed").value);
  form.append("options", JSON.stringify(chosenOptions()));
  form.append("precision", $("precision").value || "fp32");
  $("cancel").disabled = false;
  const times = [], started = performance.now();
  let total = 1, sampleStart = performance.now(), current = 0;
  const tick = () => {
    const { fraction, secondsLeft } = estimate(total, times, current, (performance.now() - sampleStart) / 1000);
    status(`${times.length} / ${total} samples · ${formatSeconds(secondsLeft)}`, fraction);
  };
  status("waiting for the server…", 0);
  window.pluralfill.events = [];
  const job = api.run(form, (e) => {
    window.pluralfill.events.push(e.png || e.uncertainty ? { ...e, png: "…", uncertainty: e.uncertainty && "…" } : e);
    if (e.type === "job") {  // accepted: only now do the earlier results give way
      total = e.of; gallery.start(total, photo.url); $("zip").hidden = true; uncertainty = {}; showUncertaintyChoices();
      hideResult();
      status(e.waiting ? `queued behind ${e.waiting} job(s)…` : "starting…", 0);
    }
    if (e.type === "pass") { current = e.step / e.steps; gallery.progress(e.index, current); tick(); }
    if (e.type === "sample") {
      const sample = gallery.add(e.index, e.png);
      if (e.index === 0) showOnCanvas(sample);  // the first fill on the canvas as soon as it is made
      times.push(e.seconds); current = 0; sampleStart = performance.now(); tick();
    }
    if (e.type === "uncertainty") { uncertainty[e.kind] = `data:image/png;base64,${e.uncertainty}`; showUncertaintyChoices(); }
    if (e.type === "error") {
      $("error").textContent = e.error; markBadFields(e.fields ?? {});
      status(total > 1 || times.length ? `stopped: ${times.length} of ${total} samples made` : "not run: see the error above");
    }
    if (e.type === "cancelled") { status(`cancelled: ${times.length} of ${total} samples made`); gallery.prune(); }
    if (e.type === "done") {
      $("zip").href = `/api/runs/${e.run}.zip`; $("zip").hidden = false;
      status(`done: ${total} sample${total > 1 ? "s" : ""} in ${((performance.now() - started) / 1000).toFixed(1)} s, seed ${e.seed}`
        + (e.guides?.length ? `, guided by ${e.guides.join(" and ")}` : "") + (e.precision !== "fp32" ? `, ${e.precision}` : ""), 1);
    }
  });
  running = job;
  try { await job.done; } catch (err) { $("error").textContent = `the server did not answer: ${err.message}`; }
  if (running === job) { running = null; $("cancel").disabled = true; }
  showUncertaintyChoices();
}

async function cancel() {
  const job = running;
  if (!job) return;
  status("cancelling…");
  await job.cancel();
  await job.done.catch(() => {});
}
$("run").onclick = fill;
$("cancel").onclick = cancel;
$("reseed").onclick = () => ($("seed").value = Math.floor(Math.random() * 2 ** 31));

// ------------------------------------------------------------------ uncertainty over the photo

function showUncertaintyChoices() {
  const have = gallery.samples.filter(Boolean).length;
  const choices = [["", "off"], ...(have >= 2 ? [["spread", "spread of the samples"]] : []), ...Object.keys(uncertainty).map((k) => [k, k])];
  const keep = $("uncertainty").value;
  $("uncertainty").innerHTML = choices.map(([v, t]) => `<option value="${v}">${t}</option>`).join("");
  $("uncertainty").value = choices.some(([v]) => v === keep) ? keep : "";
  showUncertainty();
}

async function showUncertainty() {
  const kind = $("uncertainty").value, heat = $("heat");
  heat.hidden = !kind;
  if (!kind) return;
  if (kind !== "spread") return void (heat.src = uncertainty[kind]);
  const samples = await Promise.all(gallery.samples.filter(Boolean).map(async (s) => pixelsOf((await loadPhoto(s.blob)).img, photo.width, photo.height).data));
  const holeRGBA = painter.ctx.hole.getImageData(0, 0, photo.width, photo.height).data;
  const hole = new Uint8Array(photo.width * photo.height).map((_, p) => holeRGBA[4 * p + 3] > 0);
  const out = new ImageData(photo.width, photo.height);
  spreadMap(samples, hole, out.data);
  const c = document.createElement("canvas");
  c.width = photo.width; c.height = photo.height;
  c.getContext("2d").putImageData(out, 0, 0);
  heat.src = c.toDataURL();
}
$("uncertainty").onchange = showUncertainty;

// ------------------------------------------------------------------ rounds: a sample as the new photo

async function useAsInput(sample) {
  const before = { photo, layers: painter.snapshot() };
  const after = { photo: await loadPhoto(sample.blob) };
  const empty = Object.fromEntries(Object.keys(before.layers).map((k) => [k, new ImageData(photo.width, photo.height)]));
  const apply = (state, layers, delta) => () => { showPhoto(state.photo); painter.restore(layers); round += delta; showRound(); };
  history.push({ undo: apply(before, before.layers, -1), redo: apply(after, empty, +1), bytes: 8 * photo.width * photo.height, kind: "round" });
  apply(after, empty, +1)();
}

function showRound() {
  $("round").textContent = round ? `round ${round + 1}: filling a previous sample (Ctrl+Z goes back)` : "";
}

loadMethods().catch((e) => ($("error").textContent = `cannot reach the server: ${e.message}`));

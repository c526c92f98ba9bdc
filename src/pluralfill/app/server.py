"""The local web app: the page (static/: HTML, CSS and JS modules, nothing fetched) and the HTTP API behind
it (OpenAPI at /docs).

    POST /api/inpaint ──> {"job", "of", "seed"}            the job's id (cancel it with POST /api/jobs/ID/cancel)
                          {"index", "step", "steps"} ...   passes of sample `index`, as the sampler makes them
                          {"index", "of", "seconds", "png"} each sample as it finishes (base64 PNG)
                          {"uncertainty", "max", ...}      where the method gives one (dsi: structure entropy)
                          {"done", "run", ...} | {"cancelled"} | {"error"}
    GET  /api/runs/RUN.zip   the samples, the inputs and settings.json with the CLI command that makes them

One job runs at a time and a few may wait (app/jobs.py); the rest are turned away, so concurrent users
cannot exhaust memory. Clients never name files: the learned methods on offer are the bundled and installed
models and the checkpoints given to `pluralfill serve`.
"""

from __future__ import annotations

import base64
import io
import json
import shlex
import time
import uuid
import zipfile
from collections import OrderedDict
from importlib.resources import files
from pathlib import Path

import anyio
import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError

from pluralfill import DEFAULT_METHOD, progress
from pluralfill.app.catalog import Catalog
from pluralfill.app.jobs import WAIT, Busy, Jobs
from pluralfill.errors import PluralfillError
from pluralfill.geometry import spread
from pluralfill.io import check_hole, hole_from_array, to_rgb

MAX_UPLOAD_MB = 20
MAX_PIXELS = 16_000_000
MAX_SAMPLES = 16
KEPT_RESULTS = 8  # finished runs kept for the zip download


def _read_upload(data: bytes, what: str, mode_mask: bool = False) -> np.ndarray:
    if len(data) > MAX_UPLOAD_MB * 2**20:
        raise HTTPException(413, f"{what} is over the {MAX_UPLOAD_MB} MB upload limit")
    try:
        im = Image.open(io.BytesIO(data))
        if im.width * im.height > MAX_PIXELS:
            raise HTTPException(413, f"{what} is {im.width}x{im.height}: over the {MAX_PIXELS / 1e6:g} MP limit")
        im.load()
    except (UnidentifiedImageError, OSError):
        raise HTTPException(400, f"{what} is not an image this server can read") from None
    return to_rgb(im, background=(0, 0, 0) if mode_mask else (255, 255, 255))


def _png(image) -> bytes:
    buf = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def heat_png(values: np.ndarray, top: float) -> bytes:
    """A float map (NaN = no value) as an RGBA PNG in matplotlib's inferno, transparent where there is no value."""
    from matplotlib import colormaps

    rgba = colormaps["inferno"](np.nan_to_num(values / max(top, 1e-9)).clip(0, 1), bytes=True)
    rgba[..., 3] = np.where(np.isnan(values), 0, 255)
    return _png(rgba)


def cli_command(settings: dict) -> str:
    """The `pluralfill inpaint` line that makes a run's samples from the zip's image.png and mask.png."""
    args = ["pluralfill", "inpaint", "image.png", "--mask", "mask.png"]
    args += ["--checkpoint", settings["checkpoint"]] if settings["checkpoint"] else ["--method", settings["method"]]
    args += ["-n", str(settings["num_samples"]), "--seed", str(settings["seed"])]
    for key, value in settings["options"].items():
        args += ["--option", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    if settings["sketch"]:
        args += ["--sketch", "sketch.png"]
    if settings["precision"] != "fp32":
        args += ["--precision", settings["precision"]]
    return shlex.join([*args, "-o", "samples"])


def create_app(checkpoints: list[str | Path] = (), device: str = "cpu", max_waiting: int = 4) -> FastAPI:
    """The app; `checkpoints` are the learned models it offers besides the store's (folders on this machine)."""
    app = FastAPI(title="pluralfill", description="Pluralistic image inpainting: N different fills of a hole.")
    static = files("pluralfill.app").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    jobs = Jobs(max_waiting)
    catalog = Catalog(checkpoints, device)
    results: OrderedDict[str, dict] = OrderedDict()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return static.joinpath("index.html").read_text()

    @app.get("/api/methods")
    def methods():
        """The methods: those that run here (the default first) with their options as typed fields and the
        precisions they run in, then the declared ones that need weights, disabled, with the reason."""
        return catalog.describe()

    @app.get("/api/limits")
    def limits():
        """What a request may hold."""
        return {"max_upload_mb": MAX_UPLOAD_MB, "max_pixels": MAX_PIXELS, "max_samples": MAX_SAMPLES}

    @app.post("/api/inpaint")
    def inpaint(
        image: UploadFile = File(..., description="the photo"),
        mask: UploadFile = File(..., description="the hole: white = missing, same size as the photo"),
        method: str = Form(DEFAULT_METHOD),
        num_samples: int = Form(4, ge=1, le=MAX_SAMPLES),
        seed: int | None = Form(None),
        options: str = Form("{}", description="method options as a JSON object, e.g. {\"steps\": 12}"),
        sketch: UploadFile | None = File(None, description="sketch models: guidance lines, white on black, the photo's size"),
        precision: str = Form("fp32", description="fp32, bf16, int8 or auto: see the method's `precisions`"),
    ):
        """Fill the hole; the response streams one JSON line per event (see the module's docstring)."""
        image_bytes, mask_bytes = image.file.read(), mask.file.read()
        picture = _read_upload(image_bytes, "image")
        hole = hole_from_array(_read_upload(mask_bytes, "mask", mode_mask=True))
        if hole.shape != picture.shape[:2]:
            raise HTTPException(400, f"mask is {hole.shape[1]}x{hole.shape[0]} but the image is {picture.shape[1]}x{picture.shape[0]}")
        try:
            opts = json.loads(options)
            assert isinstance(opts, dict)
        except (json.JSONDecodeError, AssertionError):
            raise HTTPException(400, "options must be a JSON object") from None
        lines = None
        if sketch is not None:
            # grey 0-255 as `pluralfill inpaint --sketch` reads it: mhtma-sketch thresholds it, PUT's edge maps are grey
            lines = np.asarray(Image.fromarray(_read_upload(sketch.file.read(), "sketch", mode_mask=True)).convert("L"))
            if lines.shape != picture.shape[:2]:
                raise HTTPException(400, f"sketch is {lines.shape[1]}x{lines.shape[0]} but the image is {picture.shape[1]}x{picture.shape[0]}")
        try:
            inpainter = catalog.get(method)
            if precision == "auto" and hasattr(inpainter, "choose_precision"):
                inpainter, _ = inpainter.choose_precision(picture, hole)
            elif precision != "auto":
                inpainter = catalog.get(method, precision)
            typed = inpainter.check_options(opts | ({"sketch": lines} if lines is not None else {}))
            check_hole(hole, inpainter.fills_from_nothing, inpainter.name)
        except PluralfillError as e:
            raise HTTPException(400, str(e)) from None
        seed = int(np.random.SeedSequence().generate_state(1)[0] % 2**31) if seed is None else seed
        count = 1 if inpainter.deterministic else num_samples
        settings = {"method": method, "checkpoint": catalog.offered[method] if catalog.kinds[method] == "checkpoint" else None,
                    "num_samples": count, "seed": seed, "options": {k: v for k, v in typed.items() if k != "sketch"},
                    "precision": getattr(inpainter, "precision", "fp32"), "sketch": lines is not None,
                    "size": [picture.shape[1], picture.shape[0]]}  # fmt: skip
        run = uuid.uuid4().hex[:12]

        def work(job):
            pngs, started = [], time.perf_counter()
            for i in range(count):
                job.check()
                t = time.perf_counter()
                with progress.listen(job.pass_done(i)):
                    made = inpainter.inpaint(picture, hole, 1, seed, first_sample=i, **typed)
                pngs.append(_png(made[0]))
                job.emit({"index": i, "of": count, "seconds": round(time.perf_counter() - t, 3),
                          "png": base64.b64encode(pngs[-1]).decode()})  # fmt: skip
                measure = inpainter.uncertainty
                if i == 0 and measure and f"{measure}_bits" in made.extras:
                    bits = spread(made.extras[f"{measure}_bits"], made.extras["window"], hole.shape)
                    top = float(made.extras[f"{measure}_max"])
                    job.emit({"uncertainty": base64.b64encode(heat_png(bits, top)).decode(), "kind": "structure entropy",
                              "unit": "bits", "max": top, "index": 0})  # fmt: skip
            inputs = {"image.png": _png(picture), "mask.png": _png(hole.astype(np.uint8) * 255)}
            if lines is not None:
                inputs["sketch.png"] = _png(lines)
            results[run] = {"samples": pngs, "inputs": inputs, "settings": settings | {"command": cli_command(settings)}}
            while len(results) > KEPT_RESULTS:
                results.popitem(last=False)
            job.emit({"done": True, "run": run, "seed": seed, "method": method, "seconds": round(time.perf_counter() - started, 3),
                      "sketch_pixels": int((lines > 127).sum()) if lines is not None else 0, "precision": settings["precision"]})  # fmt: skip

        try:
            job = jobs.submit(work)
        except Busy:
            raise HTTPException(503, "busy: too many requests are waiting, try again shortly") from None

        async def stream():
            try:
                yield json.dumps({"job": job.id, "of": count, "seed": seed, "waiting": len(jobs.live) - 1}) + "\n"
                while True:
                    event = await anyio.to_thread.run_sync(job.next_event)
                    if event is None:
                        break
                    if event is not WAIT:
                        yield json.dumps(event) + "\n"
            finally:
                job.cancelled.set()  # a closed connection stops its job; after the end this changes nothing

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str):
        """Stop a waiting or running job at its next sampler pass; its stream ends with {"cancelled": true}."""
        if not jobs.cancel(job_id):
            raise HTTPException(404, "no such job (it has finished, or never was)")
        return {"cancelled": True}

    @app.get("/api/runs/{run}.zip")
    def download(run: str):
        """A finished run: sample{i}.png, the inputs (image.png, mask.png, sketch.png) and settings.json, whose
        `command` makes the same samples with the CLI."""
        if run not in results:
            raise HTTPException(404, "no such run (only the last few are kept)")
        kept, buf = results[run], io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for i, png in enumerate(kept["samples"]):
                z.writestr(f"sample{i}.png", png)
            for name, png in kept["inputs"].items():
                z.writestr(name, png)
            z.writestr("settings.json", json.dumps(kept["settings"], indent=2))
        return Response(buf.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="pluralfill-{run}.zip"'})  # fmt: skip

    return app

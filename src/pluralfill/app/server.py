"""The local web app: a page to paint a hole and an HTTP API behind it (OpenAPI at /docs).

Samples stream back as they finish (one JSON object per line). One job runs at a time; a few more may
wait, the rest are turned away, so concurrent users cannot exhaust memory. Clients never name files:
the learned methods on offer are the checkpoints given to `pluralfill serve`.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from importlib.resources import files
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from PIL import Image, UnidentifiedImageError

from pluralfill import DEFAULT_METHOD
from pluralfill.errors import PluralfillError
from pluralfill.io import hole_from_array, to_rgb

MAX_UPLOAD_MB = 20
MAX_PIXELS = 16_000_000
MAX_SAMPLES = 16
KEPT_RESULTS = 8  # finished runs kept for the zip download


class Jobs:
    """One job at a time, at most `max_waiting` queued behind it."""

    def __init__(self, max_waiting: int = 4):
        self.lock, self.max_waiting = threading.Lock(), max_waiting
        self.waiting = 0
        self.guard = threading.Lock()

    def enter(self) -> None:
        with self.guard:
            if self.waiting >= self.max_waiting:
                raise HTTPException(503, "busy: too many requests are waiting, try again shortly")
            self.waiting += 1
        self.lock.acquire()
        with self.guard:
            self.waiting -= 1

    def leave(self) -> None:
        self.lock.release()


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


def create_app(checkpoints: list[str | Path] = (), device: str = "cpu", max_waiting: int = 4) -> FastAPI:
    """The app; `checkpoints` are the learned models it offers (folders on this machine)."""
    from pluralfill.registry import available_methods, load_inpainter

    app = FastAPI(title="pluralfill", description="Pluralistic image inpainting: N different fills of a hole.")
    jobs = Jobs(max_waiting)
    offered: dict[str, str] = {name: name for name in available_methods()}  # the default first, then installed models
    for ckpt in checkpoints:
        inpainter = load_inpainter(ckpt, device=device)  # fail at start-up, not at the first request
        offered[f"{inpainter.name} ({Path(ckpt).name})"] = str(ckpt)
    loaded: dict[str, object] = {}
    results: OrderedDict[str, list[bytes]] = OrderedDict()

    def inpainter_for(method: str, precision: str = "fp32"):
        if method not in offered:
            raise HTTPException(400, f"unknown method {method!r}; this server offers: {', '.join(offered)}")
        if method not in loaded:
            loaded[method] = load_inpainter(offered[method], device=device)
        if precision == "fp32":
            return loaded[method]
        if precision not in precisions_of(loaded[method]):
            raise HTTPException(400, f"{method} runs in {', '.join(precisions_of(loaded[method]))} on this server, not {precision}")
        if (method, precision) not in loaded:
            loaded[(method, precision)] = loaded[method].at_precision(precision)
        return loaded[(method, precision)]

    def precisions_of(inpainter) -> list[str]:
        """fp32, and for learned models what this server's device runs well (and auto, chosen per request)."""
        from pluralfill import precision as P

        if not hasattr(inpainter, "at_precision"):
            return ["fp32"]
        return [*P.usable(inpainter.model, device), "auto"]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return files("pluralfill.app").joinpath("static/index.html").read_text()

    @app.get("/api/methods")
    def methods():
        """The methods on offer, whether each gives different samples, and the options each takes."""
        out = []
        for name in offered:
            inp = inpainter_for(name)
            out.append({"name": name, "deterministic": inp.deterministic, "options": inp.option_names(), "precisions": precisions_of(inp)})
        return out

    @app.post("/api/inpaint")
    def inpaint(
        image: UploadFile = File(..., description="the photo"),
        mask: UploadFile = File(..., description="the hole: white = missing, same size as the photo"),
        method: str = Form(DEFAULT_METHOD),
        num_samples: int = Form(4, ge=1, le=MAX_SAMPLES),
        seed: int | None = Form(None),
        options: str = Form("{}", description="method options as a JSON object, e.g. {\"steps\": 12}"),
        sketch: UploadFile | None = File(None, description="mhtma-sketch: guidance lines, white on black, the photo's size"),
        precision: str = Form("fp32", description="fp32, bf16, int8 or auto: see the method's `precisions`"),
    ):
        """Fill the hole; the response streams one JSON line per sample as it finishes
        (`{"index", "png"}` with base64 PNG), then `{"done": true, "run": id, "seed": ...}`."""
        picture = _read_upload(image.file.read(), "image")
        hole = hole_from_array(_read_upload(mask.file.read(), "mask", mode_mask=True))
        if hole.shape != picture.shape[:2]:
            raise HTTPException(400, f"mask is {hole.shape[1]}x{hole.shape[0]} but the image is {picture.shape[1]}x{picture.shape[0]}")
        try:
            opts = json.loads(options)
            assert isinstance(opts, dict)
        except (json.JSONDecodeError, AssertionError):
            raise HTTPException(400, "options must be a JSON object") from None
        if sketch is not None:
            lines = hole_from_array(_read_upload(sketch.file.read(), "sketch", mode_mask=True))
            if lines.shape != picture.shape[:2]:
                raise HTTPException(400, f"sketch is {lines.shape[1]}x{lines.shape[0]} but the image is {picture.shape[1]}x{picture.shape[0]}")
            opts["sketch"] = lines
        inpainter = inpainter_for(method)
        if precision == "auto" and "auto" in precisions_of(inpainter):
            inpainter, _ = inpainter.choose_precision(picture, hole)
        elif precision != "fp32":
            inpainter = inpainter_for(method, precision)
        try:
            opts = inpainter.check_options(opts)
            from pluralfill.io import check_hole

            check_hole(hole, inpainter.fills_from_nothing, inpainter.name)
        except PluralfillError as e:
            raise HTTPException(400, str(e)) from None
        seed = int(np.random.SeedSequence().generate_state(1)[0] % 2**31) if seed is None else seed
        count = 1 if inpainter.deterministic else num_samples
        run = uuid.uuid4().hex[:12]
        jobs.enter()

        def stream():
            pngs = []
            try:
                for i in range(count):
                    t = time.perf_counter()
                    sample = inpainter.inpaint(picture, hole, 1, seed, first_sample=i, **opts)[0]
                    pngs.append(_png(sample))
                    yield json.dumps({"index": i, "of": count, "seconds": round(time.perf_counter() - t, 3),
                                      "png": base64.b64encode(pngs[-1]).decode()}) + "\n"  # fmt: skip
                results[run] = pngs
                while len(results) > KEPT_RESULTS:
                    results.popitem(last=False)
                line_px = int(opts["sketch"].sum()) if "sketch" in opts else 0
                yield json.dumps({"done": True, "run": run, "seed": seed, "method": method, "sketch_pixels": line_px,
                                  "precision": getattr(inpainter, "precision", "fp32")}) + "\n"  # fmt: skip
            except PluralfillError as e:
                yield json.dumps({"error": str(e)}) + "\n"
            finally:
                jobs.leave()

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    @app.get("/api/runs/{run}.zip")
    def download(run: str):
        """Every sample of a finished run as a zip of PNGs."""
        if run not in results:
            raise HTTPException(404, "no such run (only the last few are kept)")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for i, png in enumerate(results[run]):
                z.writestr(f"sample{i}.png", png)
        return Response(buf.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="pluralfill-{run}.zip"'})  # fmt: skip

    return app

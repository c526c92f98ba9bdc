"""The local web app: the page (static/: HTML, CSS and JS modules, nothing fetched) and the HTTP API behind
it (OpenAPI at /docs).

    POST /api/inpaint ──> {"type": "job", "job", "of", "seed"}   the job's id (cancel: POST /api/jobs/ID/cancel)
                          {"type": "pass", "index", "step", "steps"} ...   passes of sample `index`
                          {"type": "sample", "index", "png", ...} ...      each sample as it finishes (base64 PNG)
                          {"type": "uncertainty", "png", "max", ...}       where the method measures one
                          {"type": "done", "run", ...} | {"type": "cancelled"} | {"type": "error", "error"}
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
from typing import Literal

import anyio
import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from pluralfill import DEFAULT_METHOD, progress
from pluralfill.app.catalog import Catalog
from pluralfill.app.jobs import WAIT, Busy, Jobs
from pluralfill.errors import PluralfillError
from pluralfill.geometry import spread
from pluralfill.io import check_hole, hole_from_array, to_rgb
from pluralfill.methods.options import OptionError

MAX_UPLOAD_MB = 20
MAX_PIXELS = 16_000_000
MAX_SAMPLES = 16
KEPT_RESULTS = 8  # finished runs kept for the zip download


def _open_upload(data: bytes, what: str) -> Image.Image:
    if len(data) > MAX_UPLOAD_MB * 2**20:
        raise HTTPException(413, f"{what} is over the {MAX_UPLOAD_MB} MB upload limit")
    try:
        im = Image.open(io.BytesIO(data))
        if im.width * im.height > MAX_PIXELS:
            raise HTTPException(413, f"{what} is {im.width}x{im.height}: over the {MAX_PIXELS / 1e6:g} MP limit")
        im.load()
    except (UnidentifiedImageError, OSError):
        raise HTTPException(400, f"{what} is not an image this server can read") from None
    return im


def _read_upload(data: bytes, what: str, mode_mask: bool = False) -> np.ndarray:
    return to_rgb(_open_upload(data, what), background=(0, 0, 0) if mode_mask else (255, 255, 255))


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
    """The `pluralfill inpaint` line that makes a run's samples from the zip's image.png, mask.png and guides."""
    args = ["pluralfill", "inpaint", "image.png", "--mask", "mask.png"]
    args += ["--checkpoint", settings["checkpoint"]] if settings["checkpoint"] else ["--method", settings["method"]]
    args += ["-n", str(settings["num_samples"]), "--seed", str(settings["seed"])]
    for key, value in settings["options"].items():
        args += ["--option", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    for name in settings["guides"]:
        args += ["--guide", f"{name}={name}.png"]
    if settings["precision"] != "fp32":
        args += ["--precision", settings["precision"]]
    return shlex.join([*args, "-o", "samples"])


def _read_guides(uploads: list[UploadFile], sketch: UploadFile | None) -> dict[str, Image.Image]:
    """Guide uploads, each named NAME.png after its guide (`sketch`: one named sketch)."""
    named = [(Path(u.filename or "").stem, u) for u in uploads] + ([("sketch", sketch)] if sketch is not None else [])
    return {name: _open_upload(upload.file.read(), name) for name, upload in named}


def _options(text: str) -> dict:
    try:
        opts = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        opts = None
    if not isinstance(opts, dict):
        raise HTTPException(400, "options must be a JSON object")
    return opts


def _bad_request(e: PluralfillError) -> HTTPException:
    """A refused request: the message, and for option errors every bad field with what is wrong with it."""
    return HTTPException(
        400, str(e), headers={"X-Bad-Fields": json.dumps(e.problems)} if isinstance(e, OptionError) else None
    )


class Event(BaseModel):
    """One line of the /api/inpaint stream; `type` says which of the fields it carries."""

    type: Literal["job", "pass", "sample", "uncertainty", "done", "cancelled", "error"]
    job: str | None = Field(None, description="job: its id, for POST /api/jobs/ID/cancel")
    of: int | None = Field(None, description="job, sample: how many samples the run makes")
    seed: int | None = Field(None, description="job, done: the run's seed")
    waiting: int | None = Field(None, description="job: how many jobs are ahead of it")
    index: int | None = Field(None, description="pass, sample, uncertainty: which sample")
    step: int | None = Field(None, description="pass: passes done")
    steps: int | None = Field(None, description="pass: passes in all")
    seconds: float | None = Field(None, description="sample, done: seconds taken")
    png: str | None = Field(None, description="sample: the sample (base64 PNG)")
    uncertainty: str | None = Field(
        None, description="uncertainty: the map (base64 PNG, transparent where nothing was measured)"
    )
    kind: str | None = Field(None, description="uncertainty: what the map measures")
    unit: str | None = None
    max: float | None = Field(None, description="uncertainty: the top of its colour scale")
    run: str | None = Field(None, description="done: the run, for GET /api/runs/RUN.zip")
    method: str | None = None
    precision: str | None = None
    guides: list[str] | None = Field(None, description="done: the guides the run followed")
    error: str | None = Field(None, description="error: what went wrong")


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_REQUEST_MB = 4 * MAX_UPLOAD_MB + 1  # an image, its mask and two guides, and the form around them


class Guard:
    """ASGI middleware: the request's Host must be this server (no DNS rebinding), a POST's Origin the page itself
    (no other site submits jobs), and a body no larger than MAX_REQUEST_MB, refused from its Content-Length or
    as soon as the streamed bytes pass it."""

    def __init__(self, app, hosts: tuple[str, ...]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if "*" not in self.hosts and _hostname(host) not in self.hosts:
            return await _refuse(send, 421, f"this server answers as {self.hosts[0]}, not {host}")
        origin = headers.get("origin")
        if scope["method"] == "POST" and origin is not None and origin.split("://", 1)[-1] != host:
            return await _refuse(send, 403, "jobs are taken from this server's own page only")
        limit, seen, cut = MAX_REQUEST_MB * 2**20, 0, False
        if int(headers.get("content-length") or 0) > limit:
            return await _refuse(send, 413, f"the request is over the {MAX_REQUEST_MB} MB limit")

        async def counted():  # past the limit the body ends as if the client had gone: nothing more is read
            nonlocal seen, cut
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                cut = True
                return {"type": "http.disconnect"}
            return message

        async def unless_cut(message):  # the app's answer to a cut body gives way to the 413
            if not cut:
                await send(message)

        await self.app(scope, counted, unless_cut)
        if cut:
            await _refuse(send, 413, f"the request is over the {MAX_REQUEST_MB} MB limit")


def _hostname(host: str) -> str:
    return host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def api_page(schema: dict) -> str:
    """The endpoints of an OpenAPI schema as plain HTML: each one's method, path, summary and parameters."""
    from html import escape

    rows = []
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data", {}).get("schema", {})
            ref = form.get("$ref", "").rsplit("/", 1)[-1]
            fields = schema.get("components", {}).get("schemas", {}).get(ref, {}).get("properties", {})
            params = [p["name"] for p in op.get("parameters", [])] + list(fields)
            rows.append(
                f"<h2><code>{method.upper()} {escape(path)}</code></h2><p>{escape(op.get('description', ''))}</p>"
                + (f"<p>fields: <code>{escape(', '.join(params))}</code></p>" if params else "")
            )
    return (
        "<!doctype html><meta charset=utf-8><title>pluralfill API</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}</style>"
        "<h1>pluralfill HTTP API</h1><p>The schema: <a href=/openapi.json>/openapi.json</a>.</p>" + "".join(rows)
    )


def create_app(
    checkpoints: list[str | Path] = (), device: str = "cpu", max_waiting: int = 4, hosts=LOCAL_HOSTS
) -> FastAPI:
    """The app; `checkpoints` are the learned models it offers besides the store's (folders on this machine);
    `hosts` the names it answers to (loopback; `pluralfill serve --host` adds its own)."""
    app = FastAPI(
        title="pluralfill",
        description="Pluralistic image inpainting: N different fills of a hole.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(Guard, hosts=tuple(hosts))
    static = files("pluralfill.app").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    jobs = Jobs(max_waiting)
    catalog = Catalog(checkpoints, device)
    results: OrderedDict[str, dict] = OrderedDict()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return static.joinpath("index.html").read_text()

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs():
        """The HTTP API, read from the OpenAPI schema (/openapi.json) into a page with no script at all."""
        return api_page(app.openapi())

    @app.get("/api/methods")
    def methods():
        """The methods: those that run here (the default first) with their options as typed fields (min, max,
        step, choices), their guides and the precisions they run in, then the declared ones that need weights,
        disabled, with the reason."""
        return catalog.describe()

    @app.get("/api/limits")
    def limits():
        """What a request may hold."""
        return {"max_upload_mb": MAX_UPLOAD_MB, "max_pixels": MAX_PIXELS, "max_samples": MAX_SAMPLES}

    def prepare(method, precision, picture, hole, options, guides):
        """The inpainter in its precision and the checked options, or a 400 naming every bad field."""
        try:
            inpainter = catalog.get(method)
            if precision == "auto" and hasattr(inpainter, "choose_precision"):
                inpainter, _ = inpainter.choose_precision(picture, hole)
            elif precision != "auto":
                inpainter = catalog.get(method, precision)
            inpainter.check_guides(guides)
            pictures = {
                g.name: g.check(g.picture(guides[g.name]), hole.shape) for g in inpainter.guides if g.name in guides
            }
            typed = inpainter.check_options(options)
            check_hole(hole, inpainter.fills_from_nothing, inpainter.name)
        except PluralfillError as e:
            raise _bad_request(e) from None
        return inpainter, typed, pictures

    def fill(job, inpainter, picture, hole, typed, guides, count, seed):
        """The job's work: each sample (and the method's uncertainty map) as it is made; returns the PNGs."""
        pngs = []
        for i in range(count):
            job.check()
            t = time.perf_counter()
            with progress.listen(job.pass_done(i)):
                made = inpainter.inpaint(picture, hole, 1, seed, first_sample=i, **typed, **guides)
            pngs.append(_png(made[0]))
            job.emit(
                {
                    "type": "sample",
                    "index": i,
                    "of": count,
                    "seconds": round(time.perf_counter() - t, 3),
                    "png": base64.b64encode(pngs[-1]).decode(),
                }
            )
            measure = inpainter.uncertainty
            if i == 0 and measure and f"{measure}_bits" in made.extras:
                bits = spread(made.extras[f"{measure}_bits"], made.extras["window"], hole.shape)
                top = float(made.extras[f"{measure}_max"])
                job.emit(
                    {
                        "type": "uncertainty",
                        "uncertainty": base64.b64encode(heat_png(bits, top)).decode(),
                        "kind": measure,
                        "unit": "bits",
                        "max": top,
                        "index": 0,
                    }
                )
        return pngs

    def keep(run, inpainter, pngs, picture, hole, guides, settings):
        inputs = {"image.png": _png(picture), "mask.png": _png(hole.astype(np.uint8) * 255)}
        inputs |= {f"{g.name}.png": _png(g.image(guides[g.name])) for g in inpainter.guides if g.name in guides}
        results[run] = {"samples": pngs, "inputs": inputs, "settings": settings | {"command": cli_command(settings)}}
        while len(results) > KEPT_RESULTS:
            results.popitem(last=False)

    @app.post(
        "/api/inpaint",
        responses={
            200: {
                "description": "one Event a line (application/x-ndjson)",
                "content": {"application/x-ndjson": {"schema": Event.model_json_schema()}},
            }
        },
    )
    def inpaint(
        image: UploadFile = File(..., description="the photo"),
        mask: UploadFile = File(..., description="the hole: white = missing, same size as the photo"),
        method: str = Form(DEFAULT_METHOD),
        num_samples: int = Form(4, ge=1, le=MAX_SAMPLES),
        seed: int | None = Form(None),
        options: str = Form("{}", description='method options as a JSON object, e.g. {"steps": 12}'),
        guides: list[UploadFile] = File(
            [], description="guide pictures the photo's size, each named NAME.png after its guide"
        ),
        sketch: UploadFile | None = File(None, description="the same as a guide named sketch.png"),
        precision: str = Form("fp32", description="fp32, bf16, int8 or auto: see the method's `precisions`"),
    ):
        """Fill the hole; the response streams one JSON Event a line: {"type": "job"}, then "pass" and "sample"
        events (and "uncertainty" where the method measures one), then "done", "cancelled" or "error"."""
        picture = _read_upload(image.file.read(), "image")
        hole = hole_from_array(_read_upload(mask.file.read(), "mask", mode_mask=True))
        if hole.shape != picture.shape[:2]:
            raise HTTPException(
                400, f"mask is {hole.shape[1]}x{hole.shape[0]} but the image is {picture.shape[1]}x{picture.shape[0]}"
            )
        inpainter, typed, pictures = prepare(
            method, precision, picture, hole, _options(options), _read_guides(guides, sketch)
        )
        seed = int(np.random.SeedSequence().generate_state(1)[0] % 2**31) if seed is None else seed
        count = 1 if inpainter.deterministic else num_samples
        settings = {
            "method": method,
            "checkpoint": catalog.offered[method] if catalog.kinds[method] == "checkpoint" else None,
            "num_samples": count,
            "seed": seed,
            "options": typed,
            "precision": getattr(inpainter, "precision", "fp32"),
            "guides": sorted(pictures),
            "size": [picture.shape[1], picture.shape[0]],
        }
        run = uuid.uuid4().hex[:12]

        def work(job):
            started = time.perf_counter()
            pngs = fill(job, inpainter, picture, hole, typed, pictures, count, seed)
            keep(run, inpainter, pngs, picture, hole, pictures, settings)
            job.emit(
                {
                    "type": "done",
                    "run": run,
                    "seed": seed,
                    "method": method,
                    "guides": sorted(pictures),
                    "seconds": round(time.perf_counter() - started, 3),
                    "precision": settings["precision"],
                }
            )

        try:
            job = jobs.submit(work)
        except Busy:
            raise HTTPException(503, "busy: too many requests are waiting, try again shortly") from None
        first = {"type": "job", "job": job.id, "of": count, "seed": seed, "waiting": max(0, len(jobs.live) - 1)}
        return StreamingResponse(_stream(job, first), media_type="application/x-ndjson")

    @app.post("/api/select", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def select_object(
        image: UploadFile = File(..., description="the photo"),
        x: int = Form(..., description="a click on the object, in photo pixels (with w and h: a box's corner)"),
        y: int = Form(...),
        w: int | None = Form(None, description="with h: the box around the object, from (x, y)"),
        h: int | None = Form(None),
        grow: int = Form(0, ge=-200, le=200, description="widen (or, below 0, narrow) the selection by N px"),
    ):
        """The object under a click, or inside a box, as a hole (PNG, white = selected), offline (GrabCut)."""
        from pluralfill.masks import select

        picture = _read_upload(image.file.read(), "image")
        try:
            if w is not None and h is not None:
                hole = select(picture, box=(x, y, w, h), grow=grow)
            else:
                hole = select(picture, point=(x, y), grow=grow)
        except PluralfillError as e:
            raise HTTPException(400, str(e)) from None
        return Response(_png(hole.astype(np.uint8) * 255), media_type="image/png")

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str):
        """Stop a waiting or running job at its next sampler pass; its stream ends with {"cancelled": true}."""
        if not jobs.cancel(job_id):
            raise HTTPException(404, "no such job (it has finished, or never was)")
        return {"cancelled": True}

    @app.get("/api/runs/{run}.zip")
    def download(run: str):
        """A finished run: sample{i}.png, the inputs (image.png, mask.png, a NAME.png per guide) and settings.json,
        whose
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
        return Response(
            buf.getvalue(),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="pluralfill-{run}.zip"'},
        )

    return app


async def _stream(job, first: dict):
    try:
        yield json.dumps(first) + "\n"
        while True:
            event = await anyio.to_thread.run_sync(job.next_event)
            if event is None:
                break
            if event is not WAIT:
                yield json.dumps(event) + "\n"
    finally:
        job.cancelled.set()  # a closed connection stops its job; after the end this changes nothing

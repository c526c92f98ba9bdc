"""The web app: its HTTP API end to end, and the page in a real headless Chromium."""

import base64
import contextlib
import io
import json
import os
import shutil
import socket
import threading
import time
import zipfile

import numpy as np
import pytest
from conftest import square_hole
from PIL import Image

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from pluralfill.app.server import create_app  # noqa: E402


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app())


def _post(client, image, hole, **form):
    files = {"image": ("i.png", _png(image), "image/png"), "mask": ("m.png", _png(hole.astype(np.uint8) * 255), "image/png")}
    return client.post("/api/inpaint", files=files, data={k: str(v) for k, v in form.items()})


def _events(r) -> tuple[dict, list[dict], dict]:
    """A streamed response: its first line (the job), its samples, its last line."""
    lines = [json.loads(x) for x in r.text.splitlines()]
    return lines[0], [m for m in lines if "png" in m], lines[-1]


def _decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_api_streams_n_samples_and_zips_what_the_cli_reproduces(client, photo, tmp_path):
    small, hole = np.ascontiguousarray(photo[::2, ::2]), square_hole(128, 128, 0.3)
    r = _post(client, small, hole, method="patchmatch-plural", num_samples=3, seed=7, options='{"patch_size": 2}')
    assert r.status_code == 200
    job, samples, done = _events(r)
    assert job["of"] == 3 and job["seed"] == 7 and len(job["job"]) == 12
    assert [m["index"] for m in samples] == [0, 1, 2] and done["done"] and done["seed"] == 7
    pixels = [_decode(m["png"]) for m in samples]
    for s in pixels:
        np.testing.assert_array_equal(s[~hole], small[~hole])
    assert not np.array_equal(pixels[0], pixels[1])
    # streamed one at a time, they are the samples of a batched run with the same seed
    from pluralfill import load_inpainter

    batched = load_inpainter("patchmatch-plural").inpaint(small, hole, num_samples=3, seed=7, patch_size=2)
    for s, b in zip(pixels, batched):
        np.testing.assert_array_equal(s, np.asarray(b))
    z = client.get(f"/api/runs/{done['run']}.zip")
    assert z.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(z.content))
    assert set(archive.namelist()) == {"sample0.png", "sample1.png", "sample2.png", "image.png", "mask.png", "settings.json"}
    settings = json.loads(archive.read("settings.json"))
    assert settings["options"] == {"patch_size": 2} and settings["seed"] == 7 and settings["method"] == "patchmatch-plural"
    # the zip's command, run in the unpacked zip, writes the same samples
    archive.extractall(tmp_path)
    import shlex

    from pluralfill.cli import main

    args = shlex.split(settings["command"])
    assert args[:2] == ["pluralfill", "inpaint"]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(SystemExit) as exit_:
            main(args[1:])
        assert exit_.value.code in (0, None)
    finally:
        os.chdir(cwd)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "samples" / f"image_sample{i}.png")), pixels[i])


def test_api_methods_lists_typed_options_and_what_is_missing(client):
    methods = {m["name"]: m for m in client.get("/api/methods").json()}
    assert {"patchmatch", "telea", "navier-stokes"} <= set(methods) and methods["telea"]["deterministic"]
    assert next(iter(methods)) == "patchmatch-plural"  # the default first
    fields = {o["name"]: o for o in methods["patchmatch"]["options"]}
    assert fields["patch_size"]["type"] == "int" and fields["patch_size"]["default"] == 3
    assert fields["leave_out"]["type"] == "float"
    put = methods["put-scenes-small"]
    assert put["kind"] == "bundled" and put["available"]
    fields = {o["name"]: o for o in put["options"]}
    assert fields["sampler"]["choices"] == ["put", "put-tpami", "parallel"] and fields["sampler"]["default"] == "parallel"
    assert fields["steps"]["default"] == 8 and fields["temperature"]["type"] == "float" and fields["trace"]["type"] == "bool"
    precisions = {p["name"]: p for p in put["precisions"]}
    assert precisions["fp32"]["available"] and "auto" in precisions
    from pluralfill.precision import supported

    assert precisions["bf16"]["available"] == ("bf16" in supported("cpu"))
    assert precisions["bf16"]["available"] or "bf16" in precisions["bf16"]["reason"]
    assert not methods["patchmatch"]["precisions"][1]["available"] and "classical" in methods["patchmatch"]["precisions"][1]["reason"]
    # declared methods without weights here: listed, disabled, with what to do
    for name in ("maskgit", "dsi", "mhtma"):
        assert not methods[name]["available"] and "pluralfill models add" in methods[name]["reason"]
    assert client.get("/api/limits").json()["max_samples"] == 16
    assert "/api/inpaint" in client.get("/openapi.json").json()["paths"]
    page = client.get("/").text
    assert "pluralfill" in page and "/static/js/main.js" in page
    assert client.get("/static/js/main.js").status_code == 200 and client.get("/static/style.css").status_code == 200


def test_api_rejects_bad_requests(client, photo):
    hole = square_hole(256, 256, 0.3)
    assert _post(client, photo, square_hole(64, 64), method="telea").json()["detail"].startswith("mask is 64x64")
    assert "nothing to fill" in _post(client, photo, np.zeros((256, 256), bool), method="telea").json()["detail"]
    assert "unknown method" in _post(client, photo, hole, method="../../etc").json()["detail"]
    assert "needs trained weights" in _post(client, photo, hole, method="maskgit").json()["detail"]
    assert "has no option" in _post(client, photo, hole, method="telea", options='{"steps": 3}').json()["detail"]
    assert "wants int" in _post(client, photo, hole, method="telea", options='{"radius": "wide"}').json()["detail"]
    r = client.post("/api/inpaint", files={"image": ("x", b"garbage", "image/png"), "mask": ("m", _png(hole.astype(np.uint8)), "image/png")})
    assert r.status_code == 400 and "not an image" in r.json()["detail"]
    assert _post(client, photo, hole, num_samples=99).status_code == 422
    assert client.post("/api/jobs/nosuchjob/cancel").status_code == 404
    assert client.get("/api/runs/nosuchrun.zip").status_code == 404


def test_jobs_cancel_stops_work_at_its_next_pass_and_frees_the_runner():
    from pluralfill import progress
    from pluralfill.app.jobs import Jobs

    jobs, passes = Jobs(max_waiting=1), []

    def slow(job):
        with progress.listen(job.pass_done(0)):
            for i in range(1000):
                passes.append(i)
                progress.step(i, 1000)
                time.sleep(0.005)
        job.emit({"done": True})

    first = jobs.submit(slow)
    second = jobs.submit(lambda job: job.emit({"done": True}))
    event = first.next_event(timeout=5)
    assert event["steps"] == 1000
    jobs.cancel(first.id)
    events = []
    while (e := first.next_event(timeout=5)) is not None:
        events.append(e)
    assert events[-1] == {"cancelled": True} and len(passes) < 1000
    assert second.next_event(timeout=5) == {"done": True}  # the one waiting ran as soon as the first stopped
    # a job cancelled while it waits never runs
    blocker = jobs.submit(slow)
    waiting = jobs.submit(lambda job: job.emit({"ran": True}))
    jobs.cancel(waiting.id)
    assert waiting.next_event(timeout=5) == {"cancelled": True}
    jobs.cancel(blocker.id)
    assert blocker.finished.wait(5) and waiting.next_event(timeout=1) is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _browser(app):
    """A headless Chromium page and the app served on a free loopback port."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("chromium is not installed")
    import uvicorn
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("document.querySelectorAll('#method option').length > 0")
            yield page
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.slow
def test_page_in_headless_chromium(tmp_path, photo):
    Image.fromarray(np.ascontiguousarray(photo[::2, ::2])).save(tmp_path / "photo.png")
    with _browser(create_app()) as page:
        page.set_input_files("#file", str(tmp_path / "photo.png"))
        page.wait_for_function("document.getElementById('mask').width === 128")
        box = page.locator("#mask").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5, steps=8)
        page.mouse.up()
        page.select_option("#method", "patchmatch")
        page.fill("#n", "3")
        page.click("#run")
        page.wait_for_selector("#zip:not([hidden])", timeout=60_000)
        assert page.locator("#gallery img.result").count() == 3
        assert page.locator("#error").inner_text() == ""
        page.screenshot(path=str(tmp_path / "page.png"))


def test_api_offers_learned_checkpoints(tmp_path, photo):
    from pluralfill.models.put import PUT, put_tiny_config

    PUT(put_tiny_config()).save_pretrained(tmp_path / "put")
    client = TestClient(create_app([tmp_path / "put"]))
    methods = {m["name"]: m for m in client.get("/api/methods").json()}
    name = "put-tiny (put)"
    assert name in methods and methods[name]["kind"] == "checkpoint" and methods[name]["checkpoint"] == str(tmp_path / "put")
    assert {"sampler", "steps", "top_k"} <= {o["name"] for o in methods[name]["options"]}
    hole = square_hole(128, 128, 0.3)
    r = _post(client, np.ascontiguousarray(photo[::2, ::2]), hole, method=name, num_samples=2, seed=1,
              options='{"sampler": "parallel", "steps": 3}')  # fmt: skip
    _, samples, done = _events(r)
    assert [m["index"] for m in samples] == [0, 1] and done["done"]


def test_api_runs_a_learned_model_in_another_precision(tmp_path, photo):
    from pluralfill.models.put import PUT, put_tiny_config

    PUT(put_tiny_config()).save_pretrained(tmp_path / "put")
    client = TestClient(create_app([tmp_path / "put"]))
    methods = {m["name"]: m for m in client.get("/api/methods").json()}
    from pluralfill.precision import supported

    runs_in = lambda m: [p["name"] for p in methods[m]["precisions"] if p["available"]]  # noqa: E731
    assert runs_in("put-tiny (put)") == [*supported("cpu"), "auto"] and runs_in("patchmatch") == ["fp32"]
    hole, small = square_hole(128, 128, 0.3), np.ascontiguousarray(photo[::2, ::2])
    for precision in ("int8", "auto"):
        r = _post(client, small, hole, method="put-tiny (put)", num_samples=1, seed=1, precision=precision,
                  options='{"sampler": "parallel", "steps": 2}')  # fmt: skip
        done = json.loads(r.text.splitlines()[-1])
        assert done["done"] and done["precision"] in ("fp32", "int8"), r.text[-300:]
        assert precision != "int8" or done["precision"] == "int8"
    r = _post(client, small, hole, method="patchmatch", precision="int8")
    assert r.status_code == 400 and "fp32" in r.json()["detail"]


@pytest.fixture
def sketch_app(tmp_path):
    from pluralfill.models.mhtma import CONFIGS, MHTMA

    MHTMA(CONFIGS["mhtma-tiny-sketch"]).save_pretrained(tmp_path / "sketch")
    return create_app([tmp_path / "sketch"])


def test_sketch_lines_reach_the_sketch_model(sketch_app, photo):
    """The API takes the guidance lines as a file for mhtma-sketch and refuses them for other methods."""
    client = TestClient(sketch_app)
    methods = {m["name"]: m for m in client.get("/api/methods").json()}
    name = "mhtma-tiny-sketch (sketch)"
    assert methods[name]["sketch"] and not methods["telea"]["sketch"]
    assert {"name": "sketch", "type": "picture"}.items() <= next(o for o in methods[name]["options"] if o["name"] == "sketch").items()
    image = np.ascontiguousarray(photo[::2, ::2])
    hole = square_hole(128, 128, 0.4)
    lines = np.zeros((128, 128), np.uint8)
    lines[64, 30:100] = 255
    files = {"image": ("i.png", _png(image), "image/png"), "mask": ("m.png", _png(hole.astype(np.uint8) * 255), "image/png"),
             "sketch": ("s.png", _png(lines), "image/png")}  # fmt: skip
    r = client.post("/api/inpaint", files=files, data={"method": name, "num_samples": "1"})
    done = json.loads(r.text.splitlines()[-1])
    assert done["done"] and done["sketch_pixels"] == 70
    r = client.post("/api/inpaint", files=files, data={"method": "telea"})
    assert r.status_code == 400 and "no option 'sketch'" in r.json()["detail"]
    files["sketch"] = ("s.png", _png(lines[:50]), "image/png")
    r = client.post("/api/inpaint", files=files, data={"method": name})
    assert r.status_code == 400 and "sketch is 128x50" in r.json()["detail"]


@pytest.mark.slow
def test_page_draws_sketch_lines_on_their_own_layer(sketch_app, tmp_path, photo):
    """The page's line tool (headless Chromium): lines on their own layer, undone alone, sent with the hole."""
    name = "mhtma-tiny-sketch (sketch)"
    image = np.ascontiguousarray(photo[::2, ::2])
    Image.fromarray(image).save(tmp_path / "photo.png")
    with _browser(sketch_app) as page:
        page.select_option("#method", name)
        assert page.locator("#tool").is_visible()
        page.set_input_files("#file", str(tmp_path / "photo.png"))
        page.wait_for_function("document.getElementById('lines').width === 128")
        box = page.locator("#mask").bounding_box()

        def drag(y0, y1):
            page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * y0)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * y1, steps=8)
            page.mouse.up()

        drag(0.5, 0.5)  # the hole
        page.select_option("#tool", "lines")
        drag(0.4, 0.6)  # a line across it
        painted = "(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;" \
                  " for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }"  # fmt: skip
        hole_px, line_px = page.eval_on_selector("#mask", painted), page.eval_on_selector("#lines", painted)
        assert hole_px > 1000 and 0 < line_px < hole_px / 4  # thin lines on their own layer
        page.click("#undo")  # undo takes back the line, not the hole
        assert page.eval_on_selector("#lines", painted) == 0 and page.eval_on_selector("#mask", painted) == hole_px
        page.click("#redo")
        page.click("#run")
        page.wait_for_selector("#zip:not([hidden])", timeout=60_000)
        assert "guided by" in page.locator("#progress").inner_text()
        assert page.locator("#error").inner_text() == ""

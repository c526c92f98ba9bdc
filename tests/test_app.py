"""The web app's HTTP API end to end (the page itself: test_webapp_page.py)."""

import base64
import io
import json
import os
import time
import zipfile

import numpy as np
import pytest
import torch
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
    return TestClient(create_app(), base_url="http://127.0.0.1")


def _post(client, image, hole, **form):
    files = {
        "image": ("i.png", _png(image), "image/png"),
        "mask": ("m.png", _png(hole.astype(np.uint8) * 255), "image/png"),
    }
    return client.post("/api/inpaint", files=files, data={k: str(v) for k, v in form.items()})


def _events(r) -> tuple[dict, list[dict], dict]:
    """A streamed response: its first line (the job), its samples, its last line."""
    lines = [json.loads(x) for x in r.text.splitlines()]
    return lines[0], [m for m in lines if "png" in m], lines[-1]


def _decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def _run_in(folder, args) -> None:
    """`pluralfill ARGS` run in `folder`, as a user who unpacked a zip runs its command there."""
    from pluralfill.cli import main

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code in (0, None)
    finally:
        os.chdir(cwd)


def test_api_streams_n_samples_and_zips_what_the_cli_reproduces(client, photo, tmp_path):
    small, hole = np.ascontiguousarray(photo[::2, ::2]), square_hole(128, 128, 0.3)
    r = _post(client, small, hole, method="patchmatch-plural", num_samples=3, seed=7, options='{"patch_size": 2}')
    assert r.status_code == 200
    job, samples, done = _events(r)
    assert job["of"] == 3 and job["seed"] == 7 and len(job["job"]) == 12
    assert [m["index"] for m in samples] == [0, 1, 2] and done["type"] == "done" and done["seed"] == 7
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
    assert set(archive.namelist()) == {
        "sample0.png",
        "sample1.png",
        "sample2.png",
        "image.png",
        "mask.png",
        "settings.json",
    }
    settings = json.loads(archive.read("settings.json"))
    assert (
        settings["options"] == {"patch_size": 2} and settings["seed"] == 7 and settings["method"] == "patchmatch-plural"
    )
    # the zip's command, run in the unpacked zip, writes the same samples
    archive.extractall(tmp_path)
    import shlex

    args = shlex.split(settings["command"])
    assert args[:2] == ["pluralfill", "inpaint"]
    _run_in(tmp_path, args[1:])
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "samples" / f"image_sample{i}.png")), pixels[i])


def test_api_methods_lists_typed_options_and_what_is_missing(client):
    methods = {m["name"]: m for m in client.get("/api/methods").json()}
    assert {"patchmatch", "telea", "navier-stokes"} <= set(methods) and methods["telea"]["deterministic"]
    assert next(iter(methods)) == "patchmatch-plural"  # the default first
    fields = {o["name"]: o for o in methods["patchmatch"]["options"]}
    assert fields["patch_size"]["type"] == "int" and fields["patch_size"]["default"] == 3
    assert fields["leave_out"]["type"] == "float" and "hides" in fields["leave_out"]["help"]
    put = methods["put-scenes-small"]
    assert put["kind"] == "bundled" and put["available"]
    fields = {o["name"]: o for o in put["options"]}
    assert (
        fields["sampler"]["choices"] == ["put", "put-tpami", "parallel"] and fields["sampler"]["default"] == "parallel"
    )
    assert (
        fields["steps"]["default"] == 8
        and fields["temperature"]["type"] == "float"
        and fields["trace"]["type"] == "bool"
    )
    assert all(
        o["help"] for m in (put, methods["patchmatch"], methods["telea"]) for o in m["options"]
    )  # each says what it does
    precisions = {p["name"]: p for p in put["precisions"]}
    assert precisions["fp32"]["available"] and "auto" in precisions
    from pluralfill.precision import supported

    assert precisions["bf16"]["available"] == ("bf16" in supported("cpu"))
    assert precisions["bf16"]["available"] or "bf16" in precisions["bf16"]["reason"]
    assert (
        not methods["patchmatch"]["precisions"][1]["available"]
        and "classical" in methods["patchmatch"]["precisions"][1]["reason"]
    )
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
    assert (
        "should be a valid integer"
        in _post(client, photo, hole, method="telea", options='{"radius": "wide"}').json()["detail"]
    )
    r = client.post(
        "/api/inpaint",
        files={"image": ("x", b"garbage", "image/png"), "mask": ("m", _png(hole.astype(np.uint8)), "image/png")},
    )
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
    assert events[-1]["type"] == "cancelled" and len(passes) < 1000
    assert second.next_event(timeout=5) == {"done": True}  # the one waiting ran as soon as the first stopped
    # a job cancelled while it waits never runs
    blocker = jobs.submit(slow)
    waiting = jobs.submit(lambda job: job.emit({"ran": True}))
    jobs.cancel(waiting.id)
    assert waiting.next_event(timeout=5)["type"] == "cancelled"
    jobs.cancel(blocker.id)
    assert blocker.finished.wait(5) and waiting.next_event(timeout=1) is None


def test_api_offers_learned_checkpoints(tmp_path, photo):
    from pluralfill.models.put import PUT, put_tiny_config

    PUT(put_tiny_config()).save_pretrained(tmp_path / "put")
    client = TestClient(create_app([tmp_path / "put"]), base_url="http://127.0.0.1")
    methods = {m["name"]: m for m in client.get("/api/methods").json()}
    name = "put-tiny (put)"
    assert (
        name in methods
        and methods[name]["kind"] == "checkpoint"
        and methods[name]["checkpoint"] == str(tmp_path / "put")
    )
    assert {"sampler", "steps", "top_k"} <= {o["name"] for o in methods[name]["options"]}
    hole = square_hole(128, 128, 0.3)
    r = _post(
        client,
        np.ascontiguousarray(photo[::2, ::2]),
        hole,
        method=name,
        num_samples=2,
        seed=1,
        options='{"sampler": "parallel", "steps": 3}',
    )
    _, samples, done = _events(r)
    assert [m["index"] for m in samples] == [0, 1] and done["type"] == "done"


def test_api_runs_a_learned_model_in_another_precision(tmp_path, photo):
    from pluralfill.models.put import PUT, put_tiny_config

    PUT(put_tiny_config()).save_pretrained(tmp_path / "put")
    client = TestClient(create_app([tmp_path / "put"]), base_url="http://127.0.0.1")
    methods = {m["name"]: m for m in client.get("/api/methods").json()}
    from pluralfill.precision import supported

    runs_in = lambda m: [p["name"] for p in methods[m]["precisions"] if p["available"]]  # noqa: E731
    assert runs_in("put-tiny (put)") == [*supported("cpu"), "auto"] and runs_in("patchmatch") == ["fp32"]
    hole, small = square_hole(128, 128, 0.3), np.ascontiguousarray(photo[::2, ::2])
    for precision in ("int8", "auto"):
        r = _post(
            client,
            small,
            hole,
            method="put-tiny (put)",
            num_samples=1,
            seed=1,
            precision=precision,
            options='{"sampler": "parallel", "steps": 2}',
        )
        done = json.loads(r.text.splitlines()[-1])
        assert done["type"] == "done" and done["precision"] in supported("cpu"), r.text[
            -300:
        ]  # bf16 too, where the CPU has it
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
    client = TestClient(sketch_app, base_url="http://127.0.0.1")
    methods = {m["name"]: m for m in client.get("/api/methods").json()}
    name = "mhtma-tiny-sketch (sketch)"
    assert methods[name]["guides"] == [
        {"name": "sketch", "kind": "lines", "help": "white lines on black that the fill should follow"}
    ]
    assert methods["telea"]["guides"] == []
    image = np.ascontiguousarray(photo[::2, ::2])
    hole = square_hole(128, 128, 0.4)
    lines = np.zeros((128, 128), np.uint8)
    lines[64, 30:100] = 255
    files = {
        "image": ("i.png", _png(image), "image/png"),
        "mask": ("m.png", _png(hole.astype(np.uint8) * 255), "image/png"),
        "sketch": ("s.png", _png(lines), "image/png"),
    }
    r = client.post("/api/inpaint", files=files, data={"method": name, "num_samples": "1"})
    done = json.loads(r.text.splitlines()[-1])
    assert done["type"] == "done" and done["guides"] == ["sketch"]
    r = client.post("/api/inpaint", files=files, data={"method": "telea"})
    assert r.status_code == 400 and "telea takes no sketch guide" in r.json()["detail"]
    files["sketch"] = ("s.png", _png(lines[:50]), "image/png")
    r = client.post("/api/inpaint", files=files, data={"method": name})
    assert r.status_code == 400 and "sketch is 128x50" in r.json()["detail"]


def test_a_grey_sketch_reaches_puts_conditional_model_as_the_library_takes_it(tmp_path, photo):
    """PUT's edge maps are grey (0-255): the served samples equal `inpaint(..., sketch=grey)` from the library."""
    import pluralfill
    from pluralfill.models.put_conditional import CONFIGS as GUIDED
    from pluralfill.models.put_conditional import PUTConditional

    torch.manual_seed(0)
    model = PUTConditional(GUIDED["put-tpami-conditional-tiny"])
    with torch.no_grad():
        model.sketch_default.normal_()
    model.save_pretrained(tmp_path / "guided")
    client = TestClient(create_app([tmp_path / "guided"]), base_url="http://127.0.0.1")
    name = next(m["name"] for m in client.get("/api/methods").json() if m["name"].startswith("put-tpami-conditional"))
    image, hole = np.ascontiguousarray(photo[::2, ::2]), square_hole(128, 128, 0.4)
    edges = np.zeros((128, 128), np.uint8)
    edges[40:90, 60] = 255
    edges[70, 20:110] = 128  # a faint edge stays faint
    files = {
        "image": ("i.png", _png(image), "image/png"),
        "mask": ("m.png", _png(hole.astype(np.uint8) * 255), "image/png"),
        "sketch": ("s.png", _png(edges), "image/png"),
    }
    events = [
        json.loads(line)
        for line in client.post(
            "/api/inpaint", files=files, data={"method": name, "num_samples": "1", "seed": "3"}
        ).text.splitlines()
    ]
    served = np.asarray(
        Image.open(io.BytesIO(base64.b64decode(next(e for e in events if e["type"] == "sample")["png"])))
    )
    library = np.asarray(pluralfill.load_inpainter(tmp_path / "guided").inpaint(image, hole, 1, 3, sketch=edges)[0])
    np.testing.assert_array_equal(served, library)
    plain = np.asarray(pluralfill.load_inpainter(tmp_path / "guided").inpaint(image, hole, 1, 3, sketch=edges > 0)[0])
    assert not np.array_equal(plain, library)  # a 0/1 map would be another sketch


def test_api_streams_each_sampler_pass_and_dsi_entropy_over_the_photo(tmp_path, photo):
    """Progress events come from the shipped samplers' passes; dsi's structure entropy arrives as a map the
    photo's size, empty outside the window the model saw."""
    import torch

    from pluralfill.models.dsi import CONFIGS, DSI
    from pluralfill.models.put import PUT, put_tiny_config

    torch.manual_seed(0)
    PUT(put_tiny_config()).save_pretrained(tmp_path / "put")
    DSI(CONFIGS["dsi-tiny"]).save_pretrained(tmp_path / "dsi")
    client = TestClient(create_app([tmp_path / "put", tmp_path / "dsi"]), base_url="http://127.0.0.1")
    image, hole = np.ascontiguousarray(photo[::2, ::2]), square_hole(128, 128, 0.3)
    r = _post(
        client,
        image,
        hole,
        method="put-tiny (put)",
        num_samples=1,
        seed=0,
        options='{"sampler": "parallel", "steps": 5}',
    )
    lines = [json.loads(x) for x in r.text.splitlines()]
    passes = [m for m in lines if "steps" in m]
    assert passes and all(m["steps"] == 5 and m["index"] == 0 for m in passes)  # throttled: at least the first
    wide = np.zeros((160, 240, 3), np.uint8) + image[:1, :1]
    wide[16:144, 56:184] = image
    hole = np.zeros((160, 240), bool)
    hole[60:100, 100:140] = True
    r = _post(client, wide, hole, method="dsi-tiny (dsi)", num_samples=2, seed=0, options='{"entropy": true}')
    lines = [json.loads(x) for x in r.text.splitlines()]
    maps = [m for m in lines if "uncertainty" in m]
    assert len(maps) == 1 and maps[0]["kind"] == "entropy" and lines[-1]["type"] == "done"
    heat = _decode(maps[0]["uncertainty"])
    assert heat.shape == (160, 240, 4)
    assert heat[:, :, 3].any() and not heat[:, :, 3].all()  # the model's square window only
    methods = {m["name"]: m for m in client.get("/api/methods").json()}
    assert methods["dsi-tiny (dsi)"]["uncertainty"] == "entropy" and methods["put-tiny (put)"]["uncertainty"] is None


def test_the_queue_takes_the_running_job_and_max_waiting_more():
    from pluralfill.app.jobs import Busy, Jobs

    jobs, release = Jobs(max_waiting=2), __import__("threading").Event()
    running = jobs.submit(lambda job: release.wait(10))
    waiting = [jobs.submit(lambda job: None) for _ in range(2)]
    with pytest.raises(Busy):
        jobs.submit(lambda job: None)
    jobs.cancel(waiting[0].id)  # one place frees up
    assert waiting[0].finished.wait(5)
    waiting.append(jobs.submit(lambda job: None))
    release.set()
    assert all(j.finished.wait(5) for j in [running, *waiting])


def test_a_closed_connection_cancels_its_job(photo, monkeypatch):
    """A client that goes away (a closed tab) stops its job at the next sample: over a real connection, the
    runner is free again long before the 16 samples it asked for are made."""
    import socket
    import threading

    import httpx
    import uvicorn

    from pluralfill.app.catalog import Catalog

    made, get = [], Catalog.get

    def counting(self, method, precision="fp32"):
        inpainter = get(self, method, precision)
        fill = inpainter.inpaint
        inpainter.inpaint = lambda *a, **k: made.append(method) or fill(*a, **k)
        return inpainter

    monkeypatch.setattr(Catalog, "get", counting)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(max_waiting=0), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    hole = square_hole(256, 256, 0.5)

    def files():
        return {
            "image": ("i.png", _png(photo), "image/png"),
            "mask": ("m.png", _png(hole.astype(np.uint8) * 255), "image/png"),
        }

    url = f"http://127.0.0.1:{port}/api/inpaint"
    try:
        with (
            httpx.Client(timeout=60) as http,
            http.stream(
                "POST", url, files=files(), data={"method": "patchmatch-plural", "num_samples": "16", "seed": "1"}
            ) as r,
        ):
            lines = r.iter_lines()
            assert json.loads(next(lines))["of"] == 16 and "png" in json.loads(next(lines))
        with httpx.Client(timeout=60) as http:
            for _ in range(600):  # the only runner: busy (503) until the closed job has stopped
                if http.post(url, files=files(), data={"method": "telea"}).status_code == 200:
                    break
                time.sleep(0.05)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert made[-1] == "telea" and 1 <= made.count("patchmatch-plural") < 16


def test_the_zip_command_carries_every_setting_that_changes_the_samples(tmp_path, photo):
    """checkpoint, samples, seed, every option and the precision: the command run in the unpacked zip writes
    the streamed samples."""
    import shlex

    from pluralfill.models.put import PUT, put_tiny_config

    torch.manual_seed(0)
    PUT(put_tiny_config()).save_pretrained(tmp_path / "put")
    client = TestClient(create_app([tmp_path / "put"]), base_url="http://127.0.0.1")
    small, hole = np.ascontiguousarray(photo[::4, ::4]), square_hole(64, 64, 0.4)
    options = {"sampler": "parallel", "steps": 3, "temperature": 1.5, "top_k": 20}
    r = _post(
        client,
        small,
        hole,
        method="put-tiny (put)",
        num_samples=2,
        seed=11,
        precision="int8",
        options=json.dumps(options),
    )
    _, samples, done = _events(r)
    assert done["type"] == "done" and done["precision"] == "int8", r.text[-300:]
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{done['run']}.zip").content))
    args = shlex.split(json.loads(archive.read("settings.json"))["command"])
    pairs = list(zip(args, args[1:]))
    assert ("--checkpoint", str(tmp_path / "put")) in pairs and ("-n", "2") in pairs and ("--seed", "11") in pairs
    assert ("--precision", "int8") in pairs
    assert {v for k, v in pairs if k == "--option"} == {"sampler=parallel", "steps=3", "temperature=1.5", "top_k=20"}
    archive.extractall(tmp_path / "zip")
    _run_in(tmp_path / "zip", args[1:])
    for i, m in enumerate(samples):  # int8 quantizes a batch's activations together: the CLI's batch of 2 rounds apart
        cli = np.asarray(Image.open(tmp_path / "zip" / "samples" / f"image_sample{i}.png"), dtype=int)
        assert np.abs(cli - _decode(m["png"])).max() <= 1


def test_a_transparent_sketch_draws_only_where_it_is_opaque(sketch_app, photo):
    """The page's sketch layer is a PNG with alpha: transparent pixels are no line, whatever colour they hold."""
    client = TestClient(sketch_app, base_url="http://127.0.0.1")
    image, hole = np.ascontiguousarray(photo[::2, ::2]), square_hole(128, 128, 0.4)
    layer = np.full((128, 128, 4), 255, np.uint8)  # white everywhere ...
    layer[..., 3] = 0  # ... and transparent,
    layer[64, 30:100, 3] = 255  # but for one opaque line
    files = {
        "image": ("i.png", _png(image), "image/png"),
        "mask": ("m.png", _png(hole.astype(np.uint8) * 255), "image/png"),
        "sketch": ("s.png", _png(layer), "image/png"),
    }
    r = client.post("/api/inpaint", files=files, data={"method": "mhtma-tiny-sketch (sketch)", "num_samples": "1"})
    done = json.loads(r.text.splitlines()[-1])
    assert done["type"] == "done" and done["guides"] == ["sketch"]
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{done['run']}.zip").content))
    assert int((np.asarray(Image.open(io.BytesIO(archive.read("sketch.png")))) > 127).sum()) == 70

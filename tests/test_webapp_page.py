"""The web app's page: its logic under node (tests/js), and the page itself in a real headless Chromium
(Playwright on the system's Chromium), doing what a user does: paint, undo, run, watch samples arrive,
compare, use a sample as input, cancel, download. A screenshot of each stage goes to build/screenshots/."""

import base64
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from pluralfill.app.server import create_app

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "screenshots"
PAINTED = (
    "(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
    " for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }"
)


def _system_tool(command: str, package: str) -> str:
    """The path of an OS-installed tool; skipped where it is missing, except on CI, which installs it."""
    path = shutil.which(command)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install Debian's {package} (see .ci/run)")
        pytest.skip(f"{command} is not installed")
    return path


def test_page_logic_under_node():
    """History (undo/redo across layers and rounds), mask conversion, dirty rectangles, the spread map, the
    stream reader, the estimate and the zoom maths: tests/js/page_logic.test.mjs."""
    node = _system_tool("node", "nodejs")
    files = sorted(str(f) for f in (ROOT / "tests" / "js").glob("*.test.mjs"))  # files, not a folder: node 18 to 22
    out = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "# fail 0" in out.stdout and "# pass 0" not in out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _browser(app, width=1400, height=900):
    """A headless Chromium page on the app, served on a free loopback port; page errors fail the test."""
    chromium = _system_tool("chromium", "chromium")
    import uvicorn
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    errors = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("document.querySelectorAll('#method option').length > 0")
            yield page
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not errors, errors


def _open(page, path, width):
    page.set_input_files("#file", str(path))
    page.wait_for_function(f"document.getElementById('hole').width === {width}")


def _screen(page, x, y):
    """The screen point over photo pixel (x, y), through the view's zoom and pan."""
    return page.evaluate(
        """([x, y]) => { const v = window.pluralfill.view, r = v.el.getBoundingClientRect();
           return [r.left + v.t.x + x * v.t.scale, r.top + v.t.y + y * v.t.scale]; }""",
        [x, y],
    )


def _drag(page, points, steps=6):
    """Press at the first photo point, move through the others, release."""
    page.mouse.move(*_screen(page, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*_screen(page, *p), steps=steps)
    page.mouse.up()


def _brush(page, size):
    page.fill("#brush", str(size))
    page.dispatch_event("#brush", "input")


def _hole_px(page):
    return page.eval_on_selector("#hole", PAINTED)


def _shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


@pytest.fixture
def photo_file(tmp_path, photo):
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    return path


@pytest.mark.slow
def test_page_paints_with_every_tool_and_undoes(photo_file, tmp_path):
    with _browser(create_app()) as page:
        _open(page, photo_file, 256)
        _brush(page, 20)
        _drag(page, [(40, 40), (100, 40)])  # a brush stroke, 20 px wide
        stroke = _hole_px(page)
        assert 60 * 20 * 0.8 < stroke < 80 * 22
        page.keyboard.press("r")
        _drag(page, [(120, 120), (200, 180)])
        with_rect = _hole_px(page)
        assert abs(with_rect - stroke - 80 * 60) < 400
        page.keyboard.press("l")
        _drag(page, [(20, 200), (60, 200), (60, 240), (20, 240)])  # a lasso round a 40x40 square
        with_lasso = _hole_px(page)
        assert abs(with_lasso - with_rect - 40 * 40) < 300
        page.keyboard.press("e")
        _drag(page, [(130, 150), (190, 150)])  # the eraser through the rectangle
        erased = _hole_px(page)
        assert erased < with_lasso - 60 * 15
        page.keyboard.press("Control+z")
        assert _hole_px(page) == with_lasso
        page.click("#undo")
        page.click("#undo")
        assert _hole_px(page) == stroke
        page.keyboard.press("Control+Shift+Z")
        assert _hole_px(page) == with_rect
        page.click("#redo")
        page.click("#clear")
        assert _hole_px(page) == 0
        page.keyboard.press("Control+z")
        assert _hole_px(page) == with_lasso
        # brush size keys
        before = int(page.input_value("#brush"))
        page.keyboard.press("]")
        assert int(page.input_value("#brush")) > before
        # an uploaded mask (white = hole), inverted, and the hole from a photo's transparency
        mask = np.zeros((256, 256), np.uint8)
        mask[:64] = 255
        Image.fromarray(mask).save(tmp_path / "mask.png")
        page.set_input_files("#maskfile", str(tmp_path / "mask.png"))
        page.wait_for_function(f"() => ({PAINTED})(document.getElementById('hole')) === {64 * 256}")
        page.check("#invert")
        page.set_input_files("#maskfile", str(tmp_path / "mask.png"))
        page.wait_for_function(f"() => ({PAINTED})(document.getElementById('hole')) === {192 * 256}")
        page.keyboard.press("Control+z")
        assert _hole_px(page) == 64 * 256
        rgba = np.dstack([np.asarray(Image.open(photo_file)), np.full((256, 256), 255, np.uint8)])
        rgba[200:, :100, 3] = 0
        Image.fromarray(rgba).save(tmp_path / "cutout.png")
        _open(page, tmp_path / "cutout.png", 256)
        assert _hole_px(page) == 0 and page.locator("#alpha").is_visible()
        page.click("#alpha")
        assert _hole_px(page) == 56 * 100
        _shot(page, "paint.png")


@pytest.mark.slow
def test_page_zooms_pans_and_paints_under_the_pointer_on_a_4000x3000_photo(tmp_path):
    big = np.asarray(
        Image.open(
            ROOT.parent
            / "shared/data/scenes256/train"
            / sorted(os.listdir(ROOT.parent / "shared/data/scenes256/train"))[0]
        )
        .convert("RGB")
        .resize((4000, 3000))
    )
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=90)
    with _browser(create_app()) as page:
        _open(page, tmp_path / "big.jpg", 4000)
        fitted = page.evaluate("window.pluralfill.view.t.scale")
        assert 0.1 < fitted < 0.5
        page.mouse.move(*_screen(page, 2000, 1500))
        page.mouse.wheel(0, -600)  # zoom in about the pointer
        t = page.evaluate("window.pluralfill.view.t")
        assert t["scale"] > fitted * 2
        x, y = _screen(page, 2000, 1500)
        stage = page.locator("#stage").bounding_box()
        assert abs(x - (stage["x"] + stage["width"] / 2)) < stage["width"] / 3  # the point stayed near the pointer
        # space+drag pans, and paints nothing
        page.keyboard.down(" ")
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x - 150, y - 100, steps=5)
        page.mouse.up()
        page.keyboard.up(" ")
        panned = page.evaluate("window.pluralfill.view.t")
        assert abs(panned["x"] - t["x"] + 150) < 2 and abs(panned["y"] - t["y"] + 100) < 2
        assert _hole_px(page) == 0
        # a stroke lands on the photo pixels under the pointer, at any zoom
        _brush(page, 40)
        _drag(page, [(1900, 1500), (2100, 1500)])
        px = page.evaluate(
            "() => { const c = document.getElementById('hole').getContext('2d'); return [c.getImageData(2000, 1500, 1, "
            "1).data[3], c.getImageData(2000, 1560, 1, 1).data[3], c.getImageData(1800, 1500, 1, 1).data[3]]; }"
        )
        assert px[0] > 0 and px[1] == 0 and px[2] == 0
        # undo keeps only the stroke's rectangle, not the 48 MB layer
        assert page.evaluate("window.pluralfill.history.bytes()") < 8 * 260 * 60
        page.keyboard.press("Control+z")
        assert (
            page.evaluate(
                "() => document.getElementById('hole').getContext('2d').getImageData(2000, 1500, 1, 1).data[3]"
            )
            == 0
        )
        page.keyboard.press("f")
        assert abs(page.evaluate("window.pluralfill.view.t.scale") - fitted) < 1e-6
        _shot(page, "zoom.png")


@pytest.mark.slow
def test_page_runs_compares_uses_a_sample_as_input_and_downloads(photo_file, tmp_path):
    with _browser(create_app()) as page:
        _open(page, photo_file, 256)
        # typed fields from the method's declared options, and the methods that need weights, with the reason
        assert page.locator("#opt-patch_size").get_attribute("type") == "number"
        assert page.input_value("#opt-patch_size") == "3"
        assert "patches PatchMatch matches" in page.get_attribute("label[data-option=patch_size]", "title")
        assert page.locator("#method option[disabled]", has_text="maskgit").count() == 1
        assert "pluralfill models add" in page.locator("#unavailable").text_content()  # folded until opened
        page.select_option("#method", "telea")
        assert page.locator("#opt-radius").count() == 1 and page.locator("#n").is_disabled()
        page.select_option("#method", "patchmatch-plural")
        page.keyboard.press("r")
        _drag(page, [(90, 90), (170, 160)])
        hole_before = _hole_px(page)
        page.fill("#n", "3")
        page.fill("#seed", "11")
        page.check("#seed-lock")  # repeat this seed
        page.click("#run")
        page.wait_for_selector("#zip:not([hidden])", timeout=60_000)
        assert page.locator("#gallery img.result").count() == 3 and page.locator("#error").inner_text() == ""
        events = page.evaluate("window.pluralfill.events")
        assert (
            events[0]["of"] == 3
            and [e["index"] for e in events if e["type"] == "sample"] == [0, 1, 2]
            and events[-1]["type"] == "done"
        )
        assert page.locator("#progress .text").inner_text().startswith("done: 3 samples")
        # the spread of the samples over the photo
        page.select_option("#uncertainty", "spread")
        page.wait_for_function("document.getElementById('heat').src.startsWith('data:image/png')")
        assert page.locator("#heat").is_visible()
        _shot(page, "run.png")
        # the viewer: one sample large, then against the input with the slider and the toggle
        page.locator("#gallery img.result").nth(1).click()
        page.wait_for_selector("#viewer[open]")
        assert page.input_value("#view-a") == "1" and page.input_value("#view-b") == "input"
        page.click("#view-modes [data-mode=slider]")
        page.fill("#view-split", "30")
        page.dispatch_event("#view-split", "input")
        assert "inset(0px 0px 0px 30%)" in page.eval_on_selector("#view-img-b", "e => getComputedStyle(e).clipPath")
        assert page.locator("#view-img-b").is_visible()
        page.select_option("#view-b", "2")  # two samples against each other
        page.keyboard.press("t")
        assert (
            page.locator("#view-img-b").is_visible()
            and page.eval_on_selector("#view-img-b", "e => e.style.clipPath") == "none"
        )
        page.keyboard.press("t")
        assert not page.locator("#view-img-b").is_visible()
        page.mouse.move(700, 450)
        page.mouse.wheel(0, -400)  # both images sit in one zoomed stack
        assert page.evaluate("window.pluralfill.viewer.view.t.scale") > 1
        _shot(page, "compare.png")
        with page.expect_download() as download:
            page.click("#view-download")
        assert download.value.suggested_filename == "sample1.png"
        page.keyboard.press("Escape")
        # every sample and the settings that reproduce them
        with page.expect_download() as download:
            page.click("#zip")
        archive = zipfile.ZipFile(download.value.path())
        settings = json.loads(archive.read("settings.json"))
        assert (
            settings["seed"] == 11
            and settings["num_samples"] == 3
            and "pluralfill inpaint image.png" in settings["command"]
        )
        assert {"sample0.png", "sample2.png", "image.png", "mask.png"} <= set(archive.namelist())
        sample1 = np.asarray(Image.open(io.BytesIO(archive.read("sample1.png"))))
        # use a sample as input: the photo becomes it, the hole empties; Ctrl+Z brings both back
        original = page.get_attribute("#photo", "src")
        page.locator("#gallery .use").nth(1).click()
        page.wait_for_function(f"document.getElementById('photo').src !== '{original}'")
        assert _hole_px(page) == 0 and "round 2" in page.locator("#round").inner_text()
        shown = page.evaluate("""() => {
            const i = document.getElementById('photo'), c = document.createElement('canvas');
            c.width = i.naturalWidth; c.height = i.naturalHeight; const x = c.getContext('2d'); x.drawImage(i, 0, 0);
            return Array.from(x.getImageData(120, 120, 1, 1).data.slice(0, 3)); }""")
        assert shown == sample1[120, 120].tolist()
        page.keyboard.press("Control+z")
        page.wait_for_function(f"document.getElementById('photo').src === '{original}'")
        assert _hole_px(page) == hole_before and page.locator("#round").inner_text() == ""
        page.keyboard.press("Control+Shift+Z")
        page.wait_for_function(f"document.getElementById('photo').src !== '{original}'")


@pytest.fixture
def put_app(tmp_path):
    import torch

    from pluralfill.models.put import PUT, put_tiny_config

    torch.manual_seed(0)
    PUT(put_tiny_config()).save_pretrained(tmp_path / "put")
    return create_app([tmp_path / "put"])


@pytest.mark.slow
def test_page_cancels_a_running_job_and_the_next_starts_at_once(put_app, photo_file):
    name = "put-tiny (put)"
    with _browser(put_app) as page:
        _open(page, photo_file, 256)
        page.select_option("#method", name)
        assert page.locator("#opt-sampler").evaluate("e => e.tagName") == "SELECT"
        assert page.input_value("#opt-steps") == "12" and page.locator("#precision-label").is_visible()
        edges = page.evaluate(
            "[...document.querySelectorAll('#precision, #options label > input:not([type=checkbox]),"
            " #options label > select')].map(e => Math.round(e.getBoundingClientRect().right))"
        )
        assert len(edges) > 5 and len(set(edges)) == 1, edges  # the method's fields line up with Precision
        page.keyboard.press("r")
        _drag(page, [(30, 30), (226, 226)])
        page.select_option("#opt-sampler", "put")  # Algorithm 1, one token a pass: many passes
        page.fill("#opt-tokens_per_step", "1")
        page.fill("#n", "16")
        page.click("#run")
        page.wait_for_selector("#gallery img.result", timeout=60_000)
        page.keyboard.press("Escape")  # cancel
        page.wait_for_function("window.pluralfill.events.some((e) => e.cancelled)", timeout=30_000)
        events = page.evaluate("window.pluralfill.events")
        made = [e["index"] for e in events if e["type"] == "sample"]
        assert 1 <= len(made) < 16 and page.locator("#gallery figure").count() == len(made)
        assert any(e["type"] == "pass" and e["steps"] > 10 for e in events)  # per-pass progress of a sample
        assert page.locator("#progress .text").inner_text().startswith("cancelled")
        assert page.locator("#cancel").is_disabled()
        page.fill("#n", "1")
        started = time.perf_counter()
        page.click("#run")
        page.wait_for_selector("#zip:not([hidden])", timeout=60_000)
        assert time.perf_counter() - started < 30 and page.locator("#error").inner_text() == ""
        assert page.evaluate("window.pluralfill.events")[0]["waiting"] == 0  # the cancelled job had freed the runner
        _shot(page, "cancel.png")


@pytest.mark.slow
def test_page_draws_sketch_lines_on_their_own_layer(tmp_path, photo_file):
    """The line tool: lines on their own layer, undone in turn with the hole, sent with the hole."""
    from pluralfill.models.mhtma import CONFIGS, MHTMA

    MHTMA(CONFIGS["mhtma-tiny-sketch"]).save_pretrained(tmp_path / "sketch")
    name = "mhtma-tiny-sketch (sketch)"
    with _browser(create_app([tmp_path / "sketch"])) as page:
        assert not page.locator("[data-tool=line]").is_visible()
        page.select_option("#method", name)
        assert page.locator("[data-tool=line]").is_visible()
        assert page.locator("#opt-attention_branch").evaluate("e => [...e.options].map((o) => o.value)") == [
            "on",
            "off",
            "high",
            "low",
        ]
        _open(page, photo_file, 256)
        _brush(page, 40)
        _drag(page, [(60, 128), (196, 128)])  # the hole
        page.keyboard.press("s")
        _drag(page, [(60, 100), (196, 150)])  # a line across it
        hole_px, line_px = _hole_px(page), page.eval_on_selector("#lines", PAINTED)
        assert hole_px > 1000 and 0 < line_px < hole_px / 4
        page.keyboard.press("Control+z")  # the line goes first, the hole stays
        assert page.eval_on_selector("#lines", PAINTED) == 0 and _hole_px(page) == hole_px
        page.keyboard.press("Control+Shift+Z")
        page.click("#run")
        page.wait_for_selector("#zip:not([hidden])", timeout=60_000)
        assert "guided by" in page.locator("#progress .text").inner_text() and page.locator("#error").inner_text() == ""


@pytest.mark.slow
def test_page_sessions_seeds_and_failed_runs(photo_file, tmp_path):
    """A new Fill draws a new seed (the lock repeats one); a bad field is named beside it and nothing is lost;
    a new photo starts a new session, the earlier one's run reachable under Earlier photos."""
    with _browser(create_app()) as page:
        _open(page, photo_file, 256)
        page.select_option("#method", "patchmatch-plural")
        page.keyboard.press("r")
        _drag(page, [(90, 90), (170, 160)])
        page.fill("#n", "1")

        def run_and_wait():
            before = json.dumps(page.get_attribute("#zip", "href"))
            page.click("#run")
            page.wait_for_function(  # a new run's zip: this Fill is done
                f"document.getElementById('zip').getAttribute('href') !== {before} && "
                "!document.getElementById('zip').hidden",
                timeout=60_000,
            )
            return page.input_value("#seed"), page.get_attribute("#gallery img.result", "src")

        first_seed, _ = run_and_wait()
        second_seed, _ = run_and_wait()
        assert first_seed != second_seed  # Fill again gives new fills
        page.check("#seed-lock")
        assert run_and_wait()[0] == second_seed
        # a value outside its declared range: named beside the field, nothing sent, the results stay
        assert page.get_attribute("#opt-patch_size", "max") == "16"
        page.fill("#opt-patch_size", "99")
        page.click("#run")
        assert page.locator("label[data-option=patch_size] .bad-field").inner_text() != ""
        assert "patch_size" in page.locator("#error").inner_text()
        assert page.locator("#gallery img.result").count() == 1 and not page.locator("#zip").is_hidden()
        zip_before = page.get_attribute("#zip", "href")
        # a new photo: a new session; the last run's zip under Earlier photos
        other = tmp_path / "other.png"
        Image.fromarray(np.zeros((128, 192, 3), np.uint8) + 90).save(other)
        page.set_input_files("#file", str(other))
        page.wait_for_function("document.getElementById('hole').width === 192")
        assert page.locator("#gallery img.result").count() == 0 and page.locator("#zip").is_hidden()
        assert page.locator("#earlier a").get_attribute("href").endswith(zip_before)


@pytest.mark.slow
def test_page_shows_the_fill_on_the_canvas_fits_a_phone_and_follows_the_theme(photo_file):
    """The first fill appears on the canvas (hold O for the original); Enter on a focused button is that button's
    own; at 390 px the canvas spans the screen with no sideways scrolling and 40 px targets; the theme switch."""
    with _browser(create_app()) as page:
        _open(page, photo_file, 256)
        page.select_option("#method", "telea")
        page.keyboard.press("r")
        _drag(page, [(90, 90), (170, 160)])
        page.click("#run")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        assert page.eval_on_selector("#hole", "e => getComputedStyle(e).visibility") == "hidden"
        page.keyboard.down("o")
        assert page.eval_on_selector("#result", "e => getComputedStyle(e).visibility") == "hidden"
        page.keyboard.up("o")
        assert page.eval_on_selector("#result", "e => getComputedStyle(e).visibility") == "visible"
        _shot(page, "desktop-light.png")
        # Enter on the focused Undo: an undo, not also a Fill
        runs = len(page.evaluate("window.pluralfill.events"))
        page.focus("#undo")
        page.keyboard.press("Enter")
        page.wait_for_timeout(300)
        assert len(page.evaluate("window.pluralfill.events")) == runs
        page.click("#theme")
        assert page.evaluate("document.documentElement.dataset.theme") in ("dark", "light")
        if page.evaluate("document.documentElement.dataset.theme") == "light":
            page.click("#theme")
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 255, 255)"
        _shot(page, "desktop-dark.png")
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(300)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.evaluate("document.getElementById('stage').getBoundingClientRect().width") >= 0.7 * 390
        small = page.evaluate(
            "[...document.querySelectorAll('#toolbar button:not([hidden]), #run')].filter(b => b.offsetParent)"
            ".filter(b => b.getBoundingClientRect().height < 40).map(b => b.id || b.textContent)"
        )
        assert small == [], small
        # the settings slide up in a sheet; Fill is in the tool bar
        below = "document.getElementById('method').getBoundingClientRect().top >= window.innerHeight"
        assert page.locator("#run-phone").is_visible() and page.evaluate(below)  # the sheet is down
        page.click("#sheet-toggle")
        page.wait_for_timeout(400)
        assert not page.evaluate(below) and page.get_attribute("#sheet-toggle", "aria-expanded") == "true"
        _shot(page, "phone-sheet.png")
        page.click("#sheet-toggle")
        page.wait_for_timeout(400)
        _shot(page, "phone-dark.png")
        page.click("#theme")
        _shot(page, "phone-light.png")


@pytest.mark.slow
def test_page_selects_an_object_by_a_click(tmp_path):
    """The Select tool: a click on the astronaut's helmet makes a hole over most of it, undone in one step."""
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    with _browser(create_app()) as page:
        _open(page, path, 512)
        page.keyboard.press("m")
        assert page.get_attribute('[data-tool="select"]', "aria-pressed") == "true"
        x, y = _screen(page, 390, 440)
        page.mouse.click(x, y)
        page.wait_for_function("document.querySelector('#progress .text').textContent.startsWith('selected')")
        inside, painted = page.evaluate(
            """() => { const d = document.getElementById('hole').getContext('2d').getImageData(0, 0, 512, 512).data;
               let inside = 0, painted = 0;
               for (let i = 0; i < 512 * 512; i++) { if (d[4 * i + 3] > 0) { painted++;
                 const x = i % 512, y = Math.floor(i / 512);
                 if ((x - 393) ** 2 + (y - 452) ** 2 <= 112 ** 2) inside++; } }
               return [inside, painted]; }"""
        )
        helmet = int(np.sum((np.mgrid[:512, :512][1] - 393) ** 2 + (np.mgrid[:512, :512][0] - 452) ** 2 <= 112**2))
        assert inside / helmet >= 0.85 and inside / (painted + helmet - inside) >= 0.65, (inside, painted, helmet)
        page.keyboard.press("Control+z")
        assert _hole_px(page) == 0
        _drag(page, [(275, 335), (511, 511)])  # a box round the helmet, with the same tool
        page.wait_for_function("document.querySelector('#progress .text').textContent.startsWith('selected')")
        assert _hole_px(page) > 0.8 * helmet


@pytest.mark.slow
def test_page_staples_paste_save_grow_shrink_last_hole_and_shortcuts(photo_file, tmp_path):
    with _browser(create_app()) as page:
        # Ctrl+V: a photo from the clipboard
        data = base64.b64encode(photo_file.read_bytes()).decode()
        page.evaluate(
            """(b64) => { const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
               const t = new DataTransfer(); t.items.add(new File([bytes], 'pasted.png', {type: 'image/png'}));
               window.dispatchEvent(new ClipboardEvent('paste', {clipboardData: t})); }""",
            data,
        )
        page.wait_for_function("document.getElementById('hole').width === 256")
        page.select_option("#method", "telea")
        page.keyboard.press("r")
        _drag(page, [(90, 90), (170, 160)])
        base = _hole_px(page)
        page.keyboard.press(".")
        grown = _hole_px(page)
        page.keyboard.press(",")
        page.keyboard.press(",")
        shrunk = _hole_px(page)
        assert grown > base > shrunk > 0
        page.keyboard.press(".")
        assert _hole_px(page) == base  # a rectangle grows and shrinks back exactly
        page.click("#run")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        with page.expect_download() as download:  # Ctrl+S: the fill on the canvas
            page.keyboard.press("Control+s")
        assert download.value.suggested_filename == "fill0.png"
        page.click("#clear")
        assert _hole_px(page) == 0
        page.keyboard.press("h")  # the hole of the last Fill again
        assert _hole_px(page) == base
        page.keyboard.press("?")
        assert page.locator("#shortcuts").is_visible()
        page.keyboard.press("Escape")
        assert not page.locator("#shortcuts").is_visible()


AXE_VERSION = "4.14.1"  # from the npm registry, installed by the tests (the page itself fetches nothing)


@pytest.fixture(scope="module")
def axe_source():
    folder = ROOT / "build" / "axe"
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        npm = _system_tool("npm", "npm")
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", folder, "--no-audit", "--no-fund", f"axe-core@{AXE_VERSION}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            (pytest.fail if os.environ.get("CI") else pytest.skip)(
                f"npm could not install axe-core: {done.stderr[-300:]}"
            )
    return script.read_text()


@pytest.mark.slow
def test_page_has_no_serious_accessibility_finding_in_any_state(photo_file, axe_source):
    """axe-core on the page in each state (empty, photo and hole, results, a refused field, the viewer, the
    shortcut sheet) at a desktop and a phone size, in both themes: no serious or critical finding."""
    with _browser(create_app()) as page:

        def audit(state):
            for width, height in ((1400, 900), (390, 844)):
                page.set_viewport_size({"width": width, "height": height})
                for theme in ("light", "dark"):
                    page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
                    if not page.evaluate("typeof axe !== 'undefined'"):
                        page.add_script_tag(content=axe_source)
                    found = page.evaluate(
                        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                        ".filter(v => ['serious', 'critical'].includes(v.impact))"
                        ".map(v => `${v.id}: ${v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', ')}`)"
                    )
                    assert found == [], (state, width, theme, found)
            page.set_viewport_size({"width": 1400, "height": 900})

        audit("empty")
        _open(page, photo_file, 256)
        page.keyboard.press("r")
        _drag(page, [(90, 90), (170, 160)])
        audit("photo and hole")
        page.fill("#n", "2")
        page.click("#run")
        page.wait_for_selector("#zip:not([hidden])", timeout=60_000)
        audit("results")
        page.fill("#opt-patch_size", "99")
        page.click("#run")
        audit("a refused field")
        page.fill("#opt-patch_size", "3")
        page.locator("#gallery img.result").first.click()
        page.wait_for_selector("#viewer[open]")
        audit("the viewer")
        page.keyboard.press("Escape")
        page.keyboard.press("?")
        audit("the shortcut sheet")


@pytest.mark.slow
def test_page_pinches_and_pans_with_two_fingers_without_painting(photo_file):
    with _browser(create_app(), width=390, height=844) as page:
        _open(page, photo_file, 256)
        box = page.locator("#stage").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        before = page.evaluate("({...window.pluralfill.view.t})")

        def touch(kind, pid, x, y):
            page.dispatch_event(
                "#stage",
                kind,
                {
                    "pointerId": pid,
                    "pointerType": "touch",
                    "clientX": x,
                    "clientY": y,
                    "button": 0,
                    "buttons": 1,
                    "isPrimary": pid == 1,
                },
            )

        touch("pointerdown", 1, cx - 20, cy)
        touch("pointerdown", 2, cx + 20, cy)
        for step in range(1, 6):  # the fingers part: a pinch out about the centre
            touch("pointermove", 1, cx - 20 - 10 * step, cy)
            touch("pointermove", 2, cx + 20 + 10 * step, cy)
        touch("pointerup", 1, cx - 70, cy)
        touch("pointerup", 2, cx + 70, cy)
        after = page.evaluate("({...window.pluralfill.view.t})")
        assert after["scale"] > 1.5 * before["scale"]
        assert _hole_px(page) == 0  # the first finger painted nothing
        touch("pointerdown", 1, cx - 20, cy)
        touch("pointerdown", 2, cx + 20, cy)
        touch("pointermove", 1, cx - 20, cy + 50)
        touch("pointermove", 2, cx + 20, cy + 50)
        touch("pointerup", 1, cx - 20, cy + 50)
        touch("pointerup", 2, cx + 20, cy + 50)
        moved = page.evaluate("({...window.pluralfill.view.t})")
        assert moved["y"] - after["y"] > 40 and abs(moved["scale"] - after["scale"]) < 1e-6
        assert _hole_px(page) == 0

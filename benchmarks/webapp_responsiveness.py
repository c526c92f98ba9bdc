"""How the web app's page keeps up on a large photo: a 4000x3000 photo against a 256x256 one, in one run of
headless Chromium (the system's `chromium`, driven by Playwright).

    python benchmarks/webapp_responsiveness.py [--quick] [--size 4000x3000]

Measured per photo: opening it (decode, layers, fit), one pointer move of a brush stroke (the input event
handled and the next frame drawn), undo and redo of a stroke, one wheel zoom step, and the undo history's
memory after the strokes (dirty rectangles, so it grows with what was painted, not with the photo). The
ratios to the small photo are what to read: Playwright's round trip to the browser is in every number.
Reports, never asserts.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

FRAME = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


def _serve():
    import uvicorn

    from pluralfill.app.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, port


def _screen(page, x, y):
    return page.evaluate(
        """([x, y]) => { const v = window.pluralfill.view, r = v.el.getBoundingClientRect();
           return [r.left + v.t.x + x * v.t.scale, r.top + v.t.y + y * v.t.scale]; }""",
        [x, y],
    )


def measure(page, path: Path, width: int, height: int, strokes: int, moves: int) -> dict:
    """Milliseconds (medians) and the history's megabytes for one photo."""
    t = time.perf_counter()
    page.set_input_files("#file", str(path))
    page.wait_for_function(f"document.getElementById('hole').width === {width}")
    page.evaluate(FRAME)
    opened = (time.perf_counter() - t) * 1000
    page.fill("#brush", str(max(8, width // 40)))
    page.dispatch_event("#brush", "input")
    rng = np.random.default_rng(0)
    per_move, undo, redo = [], [], []
    for _ in range(strokes):
        x0, y0 = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        page.mouse.move(*_screen(page, x0, y0))
        page.mouse.down()
        t = time.perf_counter()
        for k in range(1, moves + 1):
            page.mouse.move(*_screen(page, x0 + k * width / 200, y0 + k * height / 400))
        page.evaluate(FRAME)
        per_move.append((time.perf_counter() - t) * 1000 / moves)
        page.mouse.up()
    history_mb = page.evaluate("window.pluralfill.history.bytes()") / 2**20
    for _ in range(min(strokes, 5)):
        t = time.perf_counter()
        page.evaluate(f"() => {{ window.pluralfill.history.undo(); return {FRAME}; }}")
        undo.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        page.evaluate(f"() => {{ window.pluralfill.history.redo(); return {FRAME}; }}")
        redo.append((time.perf_counter() - t) * 1000)
    page.mouse.move(*_screen(page, width / 2, height / 2))
    wheel = []
    for k in range(10):
        t = time.perf_counter()
        page.mouse.wheel(0, -120 if k < 5 else 120)
        page.evaluate(FRAME)
        wheel.append((time.perf_counter() - t) * 1000)
    med = statistics.median
    return {
        "open": opened,
        "stroke move": med(per_move),
        "undo": med(undo),
        "redo": med(redo),
        "wheel zoom": med(wheel),
        "history MB": history_mb,
        "layer MB": width * height * 4 / 2**20,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few strokes (what the test runs)")
    ap.add_argument("--size", default="4000x3000", help="the large photo, WIDTHxHEIGHT")
    args = ap.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("webapp_responsiveness: needs the system's chromium (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    width, height = (int(v) for v in args.size.lower().split("x"))
    strokes, moves = (2, 5) if args.quick else (20, 30)
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        photos = {}
        for w, h in ((256, 256), (width, height)):
            # smooth noise, so that the JPEG is a photo's size rather than a flat colour's
            small = rng.integers(0, 255, (h // 64 + 1, w // 64 + 1, 3), dtype=np.uint8)
            photos[(w, h)] = Path(tmp) / f"{w}x{h}.jpg"
            Image.fromarray(small).resize((w, h), Image.BICUBIC).save(photos[(w, h)], quality=90)
        server, port = _serve()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                for (w, h), path in photos.items():
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    page.goto(f"http://127.0.0.1:{port}/")
                    page.wait_for_function("document.querySelectorAll('#method option').length > 0")
                    results[f"{w}x{h}"] = measure(page, path, w, h, strokes, moves)
                    page.close()
                browser.close()
        finally:
            server.should_exit = True
    small, large = results.values()
    print(f"| | 256x256 | {width}x{height} | ratio |\n|---|---|---|---|")
    for key in small:
        ratio = "" if key.endswith("MB") else f"{large[key] / small[key]:.1f}x"
        print(f"| {key}{'' if key.endswith('MB') else ' ms'} | {small[key]:.2f} | {large[key]:.2f} | {ratio} |")
    return results


if __name__ == "__main__":
    main()

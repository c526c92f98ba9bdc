"""The package as users install it: build the sdist and the wheel, check them, install the wheel (not the tree)
into a fresh virtual environment, and run from an empty folder what a new user runs: the demo, `serve` with
the page opened in Chromium (every script and style answers 200 and a fill completes), `train` by config name,
and `models add` of an official-format checkpoint followed by an inpaint with it.

Run by .ci/run with the test environment's Python (it has playwright): `.venv/bin/python .ci/wheel_check.py`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PAGE_FILES = (
    "pluralfill/app/static/index.html",
    "pluralfill/app/static/style.css",
    "pluralfill/app/static/js/main.js",
    "pluralfill/configs/put-tiny-pvqvae.yaml",
    "pluralfill/assets/coffee.jpg",
)


def run(*args, cwd=None, env=None, timeout=900) -> str:
    print("$", " ".join(map(str, args)), flush=True)
    done = subprocess.run(list(map(str, args)), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        command = " ".join(map(str, args))
        sys.exit(f"failed ({done.returncode}): {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def build(dist: Path) -> Path:
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    wheel = next(dist.glob("pluralfill-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in PAGE_FILES if name not in names]
    scripts = [n for n in names if n.startswith("pluralfill/app/static/js/")]
    if missing or len(scripts) < 5:
        sys.exit(f"the wheel lacks {missing or 'the page scripts'}")
    return wheel


def serve_and_fill(bin_dir: Path, work: Path) -> None:
    """`pluralfill serve --port 0` from the wheel; Chromium loads the page, every file answers 200, a fill ends."""
    import numpy as np
    from PIL import Image
    from playwright.sync_api import sync_playwright

    command = [bin_dir / "pluralfill", "serve", "--port", "0"]
    server = subprocess.Popen(command, cwd=work, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        url = re.search(r"http://\S+/", line)
        if not url:
            sys.exit(f"serve printed no URL: {line!r}")
        url = url.group(0)
        time.sleep(1.0)
        photo = np.asarray(Image.open(ROOT / "src" / "pluralfill" / "assets" / "coffee.jpg").convert("RGB"))
        Image.fromarray(photo).save(work / "photo.png")
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            statuses, errors = {}, []
            page.on("response", lambda r: statuses.__setitem__(r.url, r.status))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#method option').length > 0")
            bad = {u: s for u, s in statuses.items() if "/static/" in u and s != 200}
            if bad or not any(u.endswith("main.js") for u in statuses):
                sys.exit(f"the page's files did not all load: {bad or statuses}")
            page.set_input_files("#file", str(work / "photo.png"))
            page.wait_for_function(f"document.getElementById('hole').width === {photo.shape[1]}")
            box = page.locator("#stage").bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + 60, y + 30, steps=8)
            page.mouse.up()
            page.locator("#n").fill("2")
            page.locator("#run").click()
            done = "document.querySelector('#progress .text').textContent.startsWith('done')"
            page.wait_for_function(done, timeout=120_000)
            browser.close()
        if errors:
            sys.exit(f"the page raised: {errors}")
        print("serve: the page loaded every file and a fill completed", flush=True)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pluralfill-wheel-") as tmp:
        tmp = Path(tmp)
        wheel = build(tmp / "dist")
        env_dir = tmp / "env"
        run(sys.executable, "-m", "venv", env_dir)
        bin_dir = env_dir / "bin"
        run(bin_dir / "python", "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", f"{wheel}[app]")
        work = tmp / "work"  # an empty folder: nothing of the checkout is in reach
        work.mkdir()
        pf = bin_dir / "pluralfill"
        print(run(pf, "--version", cwd=work).strip())
        run(pf, "demo", "-o", "demo", cwd=work)
        assert (work / "demo" / "coffee_grid.png").is_file()
        serve_and_fill(bin_dir, work)
        scenes = SHARED / "data" / "scenes256" / "train"
        overrides = ["steps=2", "val_every=2", "sample_every=2", "checkpoint_every=2", "val_batches=1", "run_dir=run"]
        run(pf, "train", "put-tiny-pvqvae", f"data.train={scenes}", "data.num_workers=0", *overrides, cwd=work)
        assert (work / "run" / "last").is_dir()
        shutil.copy(SHARED / "fixtures" / "put_official_tiny" / "transformer_official_format.pth", work / "put.pth")
        home = {"PLURALFILL_HOME": str(tmp / "home"), "PATH": "/usr/bin:/bin"}
        run(pf, "models", "add", "put.pth", "--name", "wheel-put", "--num-heads", "4", cwd=work, env=home)
        shutil.copy(work / "demo" / "coffee.png", work / "photo.png")
        shutil.copy(work / "demo" / "coffee_hole.png", work / "hole.png")
        fill = ["photo.png", "--mask", "hole.png", "--method", "wheel-put", "-n", "2", "--seed", "0", "-o", "out"]
        run(pf, "inpaint", *fill, cwd=work, env=home)
        assert sorted(p.name for p in (work / "out").iterdir()) == ["photo_sample0.png", "photo_sample1.png"]
    print("the wheel works as installed", flush=True)


if __name__ == "__main__":
    main()

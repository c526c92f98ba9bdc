"""Every fenced block marked `bash run` (or `python run`) in the README and docs/ runs, as written, in a folder
of stand-in files named as the docs name them, so that no documented command rots; `pluralfill train` runs
2 steps of its config (the steps are the one thing the runner adds). Blocks without the mark need what a test
machine does not have (a downloaded full-size checkpoint, a GPU, hours); the commands they show go through
the same code as the runnable ones."""

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SCENES, SHARED
from PIL import Image

from pluralfill.cli import main
from pluralfill.masks import generate_hole

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHORT = ["steps=2", "val_every=1", "sample_every=1", "checkpoint_every=1", "log_every=1"]
BLOCK = re.compile(r"^```(bash|python) run\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(page.read_text())]


def commands(script: str) -> list[str]:
    """The shell lines of a block: continuations joined, comments and blank lines dropped."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        line = line.split(" # ")[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _sandbox(root: Path) -> Path:
    """`root/work`, beside `root/shared` (the configs read ../shared), with the files the docs name."""
    work = root / "work"
    work.mkdir()
    (root / "shared").symlink_to(SHARED)
    (work / "scenes").symlink_to(SCENES)
    crops = sorted(SCENES.iterdir())[-4:]
    Image.open(crops[0]).convert("RGB").save(work / "photo.jpg")
    Image.fromarray(generate_hole("lama-medium", 256, 0, 0, ratio=(0.15, 0.3)).astype(np.uint8) * 255).save(
        work / "hole.png"
    )
    for d in ("photos", "masks", "gt"):
        (work / d).mkdir()
    for i, p in enumerate(crops[1:3]):
        image = Image.open(p).convert("RGB").resize((128, 128))
        hole = Image.fromarray(generate_hole("lama-medium", 128, 1, i, ratio=(0.1, 0.3)).astype(np.uint8) * 255)
        image.save(work / "photos" / f"p{i}.png")
        image.save(work / "gt" / f"g{i}.png")
        hole.save(work / "photos" / f"p{i}_mask.png")
        hole.save(work / "masks" / f"p{i}.png")
    # the official checkpoints the docs download, as the tiny official-format files of the fixtures
    shutil.copy(
        SHARED / "fixtures" / "put_official_tiny" / "transformer_official_format.pth", work / "transformer_ffhq.pth"
    )
    shutil.copytree(SHARED / "fixtures" / "dsi_official_tiny", work / "CelebA-HQ_center")
    return work


def _cases():
    return [
        pytest.param(page, marks=pytest.mark.slow, id=str(page.relative_to(ROOT))) for page in PAGES if blocks(page)
    ]


@pytest.mark.parametrize("page", _cases())
def test_runnable_blocks_run(page, tmp_path, monkeypatch):
    work = _sandbox(tmp_path)
    monkeypatch.chdir(work)
    for language, script in blocks(page):
        if language == "python":
            exec(compile(script, f"{page.name} block", "exec"), {})
            continue
        for line in commands(script):
            argv = shlex.split(line)
            assert argv[0] == "pluralfill", f"{page.name}: a runnable block runs pluralfill only: {line}"
            if argv[1] == "train":
                argv += SHORT
            with pytest.raises(SystemExit) as e:
                main(argv[1:])
            assert e.value.code in (0, None), f"{page.name}: `{line}` exited {e.value.code}"


def _help(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        main([*args, "--help"])
    return capsys.readouterr().out


def _commands_with_help(capsys) -> list[list[str]]:
    """Every command and subcommand, as the words that name it (["inpaint"], ["masks", "generate"], ...)."""
    found = []

    def walk(words):
        text = _help(words, capsys)
        listed = re.findall(r"^  ([a-z][a-z-]*)  ", text.split("Commands:", 1)[1], re.M) if "Commands:" in text else []
        if words:
            found.append(words)
        for name in listed:
            walk([*words, name])

    walk([])
    return found


@pytest.mark.slow
def test_every_command_shows_examples_and_they_run(tmp_path, monkeypatch, capsys):
    """The examples at the end of each command's help, run as written (in the stand-in folder of the docs'
    blocks; `serve` runs until stopped, so its examples are read, not run)."""
    for words in _commands_with_help(capsys):
        root = tmp_path / "-".join(words)  # each command's examples on their own: a fresh folder and model store
        root.mkdir()
        monkeypatch.chdir(_sandbox(root))
        monkeypatch.setenv("PLURALFILL_HOME", str(root / "home"))
        text = _help(words, capsys)
        if words in (["models"], ["masks"]):
            continue  # groups: their subcommands carry the examples
        assert "Examples" in text.split("Options:")[-1], f"pluralfill {' '.join(words)} --help shows no examples"
        lines = [
            line.strip() for line in text.split("Examples", 1)[1].splitlines() if line.strip().startswith("pluralfill ")
        ]
        assert 1 <= len(lines) <= 3, words
        if words == ["serve"]:
            continue
        for line in lines:
            argv = shlex.split(line)[1:]
            if argv[0] == "train" and "--resume" not in argv:
                argv += SHORT
            with pytest.raises(SystemExit) as e:
                main(argv)
            assert e.value.code in (0, None), f"`{line}` exited {e.value.code}: {capsys.readouterr().err[-500:]}"
            capsys.readouterr()


def test_every_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"](docs/{page.name})" in readme, page.name
    assert len(readme.splitlines()) <= 250


def test_the_runner_reads_blocks_as_written():
    script = (
        "pluralfill inpaint a.png \\\n    --mask b.png -o out   # a comment\n# a line of comment\n\npluralfill models\n"
    )
    assert commands(script) == ["pluralfill inpaint a.png      --mask b.png -o out", "pluralfill models"]

"""Filling many images: every job (an image and its mask, from `io.find_jobs`) is read, filled and written as
NAME_sample{k}.png (and NAME_grid.png, NAME_trace.png, NAME_entropy.png when asked for). Methods that batch
across images fill several images per pass; an image that fails is reported and the others go on.
`pluralfill inpaint` is this plus its options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pluralfill import io
from pluralfill.errors import PluralfillError
from pluralfill.io import Job


@dataclass
class FillSettings:
    num_samples: int = 1
    seed: int | None = None
    grid: bool = False
    invert_mask: bool = False
    resize_mask: bool = False
    max_pixels: int = io.DEFAULT_MAX_PIXELS
    overwrite: bool = False
    composite: bool = True
    options: dict = field(default_factory=dict)  # the method's options
    guides: dict = field(default_factory=dict)  # guide name -> a picture file, or a folder of one per image


def find_fill_jobs(images, mask, mask_dir, output: Path, resume: bool, seed, overwrite: bool):
    """The (image, mask) jobs of `pluralfill inpaint` and the images without a mask; one line for what
    cannot work."""
    if mask is not None and mask_dir is not None:
        raise PluralfillError("give either --mask or --mask-dir, not both")
    jobs, unpaired = io.find_jobs(images, mask, mask_dir)
    if not jobs:
        raise PluralfillError("no image has a mask: pass --mask, --mask-dir, or put NAME_mask.png beside NAME.png")
    if output.exists() and not output.is_dir():
        raise PluralfillError(f"output must be a folder, but {output} is a file")
    if resume and seed is None:
        raise PluralfillError(
            "--resume needs --seed: the samples still to make must come from the seed of those written"
        )
    if resume and overwrite:
        raise PluralfillError("give --resume (keep what is written) or --overwrite (replace it), not both")
    return jobs, unpaired


def parse_option_pairs(pairs: list[str]) -> dict:
    """`key=value` method options; values are read as JSON where they parse (numbers, true/false)."""
    import json

    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise PluralfillError(f"--option expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        try:
            options[k.replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            options[k.replace("-", "_")] = v
    return options


def parse_guides(pairs: list[str], inpainter) -> dict[str, Path]:
    """`--guide NAME=FILE` pairs (FILE may be a folder of one picture per image, named like the images) as
    {name: path}, each a guide the method declares."""
    guides = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not path:
            raise PluralfillError(f"--guide expects NAME=FILE, got {pair!r}")
        inpainter.check_guides([name])
        if not Path(path).exists():
            raise PluralfillError(f"--guide {name}: {path} does not exist")
        guides[name] = Path(path)
    return guides


def guide_file(path: Path, job: Job) -> Path:
    """The guide picture of `job`: the file itself, or in a folder the picture named like the job's image."""
    if not path.is_dir():
        return path
    found = [p for p in io.list_images(path) if p.stem in (job.image.stem, job.name)]
    if not found:
        raise PluralfillError(f"no picture named {job.image.stem}.* in the guide folder {path}")
    return found[0]


def method_options(inpainter, method, checkpoint, pairs: list[str], flags: dict, protocol: str | None, num_samples):
    """The checked options of a run and its samples per image: `--option` pairs, the flags given (None: not
    given), and a protocol's samples and sampling options under them."""
    loaded = getattr(getattr(inpainter, "model", None), "method", inpainter.name)
    if checkpoint is not None and method is not None and method != loaded:
        raise PluralfillError(f"--method {method} but {checkpoint} holds a {loaded} model")
    options = parse_option_pairs(pairs) | {k: v for k, v in flags.items() if v is not None}
    if protocol is not None:
        from pluralfill.metrics.protocols import get_protocol

        p = get_protocol(protocol)
        num_samples = num_samples or p.samples
        options = {k: v for k, v in p.options.items() if k in inpainter.option_names()} | options
    return inpainter.check_options(options), num_samples or 1


def planned_outputs(jobs: list[Job], inpainter, outdir: Path, s: FillSettings) -> list[Path]:
    n = 1 if inpainter.deterministic else s.num_samples
    paths = [outdir / f"{j.name}_sample{k}.png" for j in jobs for k in range(n)]
    paths += [outdir / f"{j.name}_grid.png" for j in jobs] if s.grid else []
    for extra in pictures_asked(inpainter, s):
        paths += [outdir / f"{j.name}_{extra}.png" for j in jobs]
    return paths


def pictures_asked(inpainter, s: FillSettings) -> list[str]:
    """The pictures of how the samples were made that the run's options turn on (see Inpainter.pictures)."""
    return [name for name in inpainter.pictures if s.options.get(name)]


def plan_jobs(jobs: list[Job], inpainter, outdir: Path, s: FillSettings, resume: bool) -> list[int]:
    """Which of `jobs` a run does, by index, judged on the files there before it writes: with `resume` those
    whose outputs are not all written (outputs are written atomically, so a file that exists is whole);
    otherwise all, refused in one line if an output exists and `overwrite` is off."""
    io.clean_leftovers(outdir)  # the temporary files of a killed run
    if resume:
        return [
            i for i, j in enumerate(jobs) if not all(p.exists() for p in planned_outputs([j], inpainter, outdir, s))
        ]
    io.check_writable(planned_outputs(jobs, inpainter, outdir, s), s.overwrite)
    return list(range(len(jobs)))


@dataclass
class _Read:
    """A job's inputs, read and checked: the image, its hole, the options with its guides, its look."""

    job: Job
    image: object
    hole: object
    options: dict
    look: io.Look


def read_job(job: Job, inpainter, s: FillSettings) -> _Read:
    """The image, hole and guides of `job` at the image's size (guides from a file, or a folder by name)."""
    image, look = io.read_image_look(job.image, s.max_pixels)
    size = (image.shape[1], image.shape[0])
    hole = io.read_hole(job.mask, size, s.invert_mask, s.resize_mask, s.max_pixels)
    options = dict(s.options)
    for guide in inpainter.guides:
        if guide.name in s.guides:
            options[guide.name] = guide.read(guide_file(s.guides[guide.name], job), size, s.resize_mask, s.max_pixels)
    return _Read(job, image, hole, options, look)


def write_job(r: _Read, samples, inpainter, outdir: Path, s: FillSettings) -> None:
    """NAME_sample{k}.png in the image's look, the pictures asked for, and the grid."""
    for k, sample in enumerate(samples):
        io.write_image(outdir / f"{r.job.name}_sample{k}.png", r.look.apply(sample), s.overwrite)
    for extra in pictures_asked(inpainter, s):
        if samples.extras.get(extra) is not None:
            io.write_image(outdir / f"{r.job.name}_{extra}.png", samples.extras[extra], s.overwrite)
    if s.grid:
        from pluralfill.grid import make_grid

        io.write_image(outdir / f"{r.job.name}_grid.png", make_grid(r.image, r.hole, samples), s.overwrite)


def group_size(inpainter, s: FillSettings) -> int:
    """How many images a pass takes: methods that batch across images fill several (one sample a row); a
    picture of how the samples were made, or a guide read per image, needs one image at a time."""
    if not getattr(inpainter, "batches_images", False) or pictures_asked(inpainter, s) or s.guides:
        return 1
    return max(1, inpainter.batch_size // (1 if inpainter.deterministic else s.num_samples))


def fill_group(ready: list[_Read], inpainter, s: FillSettings) -> list:
    """The samples of each read job: in shared batches where the method can, else (or when one image of the
    group is at fault, to say which) one by one, as callables that raise the job's own error."""
    if len(ready) > 1:
        try:
            images, holes = [r.image for r in ready], [r.hole for r in ready]
            many = inpainter.inpaint_many(images, holes, s.num_samples, s.seed, composite=s.composite, **s.options)
            return [lambda samples=samples: samples for samples in many]
        except PluralfillError:
            pass
    return [
        partial(inpainter.inpaint, r.image, r.hole, s.num_samples, s.seed, composite=s.composite, **r.options)
        for r in ready
    ]


def fill_jobs(
    jobs: list[Job],
    inpainter,
    outdir: Path,
    s: FillSettings,
    on_error: Callable[[Job, PluralfillError], None] | None = None,
    advance: Callable[[], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    keep_going: bool = False,
) -> int:
    """Fill and write every job; returns how many failed. A failure is passed to `on_error` (with one job,
    or without `on_error`, it is raised; `keep_going`: even the one job's error goes to `on_error`). Refuses
    before any work if an output exists and `overwrite` is off.
    Outputs keep their image's look (grey stays grey, an alpha channel is written back); `on_note` hears,
    once, what happens to transparent pixels."""
    io.check_writable(planned_outputs(jobs, inpainter, outdir, s), s.overwrite)
    failed, noted, step = 0, False, advance or (lambda: None)

    def attempt(job, work, *args):
        """work(*args), or None after reporting the job's error."""
        nonlocal failed
        try:
            return work(*args)
        except PluralfillError as e:
            if on_error is None or (len(jobs) == 1 and not keep_going):
                raise
            on_error(job, e)
            failed += 1

    group = group_size(inpainter, s)
    for start in range(0, len(jobs), group):
        ready = []
        for job in jobs[start : start + group]:
            r = attempt(job, read_job, job, inpainter, s)
            if r is None:
                step()
                continue
            ready.append(r)
            if r.look.alpha is not None and on_note is not None and not noted:
                noted = True
                on_note(
                    f"{job.image.name} has an alpha channel: its transparent pixels are read as white and filled like "
                    "any others, and the alpha is written back unchanged"
                )
        for r, samples in zip(ready, fill_group(ready, inpainter, s)):
            attempt(r.job, lambda r, samples: write_job(r, samples(), inpainter, outdir, s), r, samples)
            step()
    return failed


def auto_precision(inpainter, job: Job, s: FillSettings):
    """`--precision auto`: the precision chosen on the first job's image and hole (see
    FixedResolutionInpainter.choose_precision); a classical method stays as it is."""
    if not hasattr(inpainter, "choose_precision"):
        return inpainter, []
    image, _ = io.read_image_look(job.image, s.max_pixels)
    hole = io.read_hole(job.mask, (image.shape[1], image.shape[0]), s.invert_mask, s.resize_mask, s.max_pixels)
    return inpainter.choose_precision(image, hole)


@dataclass
class DemoResult:
    grid: Path
    method: str
    num_samples: int
    hole_ratio: float


def demo(output: Path, method: str, num_samples: int = 8, seed: int = 0, overwrite: bool = False) -> DemoResult:
    """The bundled photo with a generated hole, filled `num_samples` ways: coffee.png, coffee_hole.png and
    coffee_grid.png (input, hole and the samples) in `output`."""
    from importlib.resources import files

    from PIL import Image

    from pluralfill.grid import make_grid
    from pluralfill.masks import DEMO_PRESET, generate_hole
    from pluralfill.registry import load_inpainter

    with files("pluralfill.assets").joinpath("coffee.jpg").open("rb") as f:
        image = io.to_rgb(Image.open(f))
    hole = generate_hole(DEMO_PRESET, image.shape[:2], seed=7)
    paths = [output / "coffee.png", output / "coffee_hole.png", output / "coffee_grid.png"]
    io.check_writable(paths, overwrite)
    inpainter = load_inpainter(method)
    samples = inpainter.inpaint(image, hole, num_samples, seed)
    io.write_image(paths[0], image, overwrite)
    io.write_hole(paths[1], hole, overwrite)
    io.write_image(paths[2], make_grid(image, hole, samples), overwrite)
    return DemoResult(paths[2], inpainter.name, len(samples), float(hole.mean()))

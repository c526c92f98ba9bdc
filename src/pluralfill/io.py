"""Reading and writing images and holes: the only module that touches image files.

Images come back as uint8 HxWx3 RGB arrays, holes as bool HxW arrays (True = missing pixel).
Every failure a user can cause raises `PluralfillError` with a one-line message.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pluralfill.errors import PluralfillError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 50_000_000
HOLE_THRESHOLD = 128  # luminance at or above this is a hole (white = missing, as LaMa / IOPaint / OpenCV)

# We check the pixel count ourselves, before decoding, with a message that names the option.
Image.MAX_IMAGE_PIXELS = None


def _open_lazy(path: str | os.PathLike, what: str) -> Image.Image:
    """Open without decoding: errors for missing paths, folders and non-images."""
    path = Path(path)
    if not path.exists():
        raise PluralfillError(f"{what} not found: {path}")
    if path.is_dir():
        raise PluralfillError(f"expected a {what} file but got a directory: {path}")
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        raise PluralfillError(f"cannot read {what} {path}: not an image file Pillow recognizes") from None
    except OSError as e:
        raise PluralfillError(f"cannot read {what} {path}: {e}") from None
    return im


def _open(path: str | os.PathLike, max_pixels: int | None, what: str) -> Image.Image:
    im = _open_lazy(path, what)
    w, h = im.size
    if max_pixels is not None and w * h > max_pixels:
        raise PluralfillError(
            f"{what} {path} is {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:g} MP "
            "(raise it with --max-pixels)"
        )
    try:
        im.load()
        return ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data surfaces only on decode
        raise PluralfillError(f"cannot read {what} {path}: corrupt or truncated ({e})") from None


def _high_bit_depth_to_8bit(im: Image.Image) -> Image.Image:
    """Single-channel 16/32-bit and float images to 8-bit L, scaling by the range the mode implies."""
    a = np.asarray(im)
    if im.mode == "F":
        a = a * 255.0 if a.size and float(np.nanmax(a)) <= 1.0 else a
        return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8))
    a = a.astype(np.float64)
    scale = 257.0 if a.size and a.max() > 255 else 1.0  # 'I' from an 8-bit source stays as is
    return Image.fromarray(np.clip(a / scale, 0, 255).round().astype(np.uint8))


def to_rgb(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Any Pillow image to uint8 HxWx3 RGB; transparency is composited on `background`."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = _high_bit_depth_to_8bit(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "RGBa", "La"):
        im = im.convert("RGBA")
        canvas = Image.new("RGBA", im.size, background + (255,))
        im = Image.alpha_composite(canvas, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), read from the header only."""
    im = _open_lazy(path, "image")
    w, h = im.size
    orientation = im.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image file as uint8 HxWx3 RGB, EXIF orientation applied, RGBA composited on white."""
    return to_rgb(_open(path, max_pixels, "image"))


@dataclass(frozen=True)
class Look:
    """What an image file was beyond its RGB pixels, so that its fills come back the same way: grey
    stays grey (L), and an alpha channel is written back unchanged (the colours under transparent pixels
    were read as white and are filled like any others)."""

    grey: bool = False
    alpha: np.ndarray | None = None

    def apply(self, rgb) -> Image.Image:
        im = rgb if isinstance(rgb, Image.Image) else Image.fromarray(np.asarray(rgb))
        if self.grey:
            im = im.convert("L")
        if self.alpha is not None:
            im = im.convert("LA" if self.grey else "RGBA")
            im.putalpha(Image.fromarray(self.alpha))
        return im


def read_image_look(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, Look]:
    """`read_image`, and what to give back: whether the file is grey, and its alpha channel if it has one."""
    im = _open(path, max_pixels, "image")
    grey = im.mode in ("1", "L", "LA", "La", "I", "F") or im.mode.startswith("I;16")
    has_alpha = im.mode in ("RGBA", "LA", "RGBa", "La", "PA") or (im.mode == "P" and "transparency" in im.info)
    alpha = np.asarray(im.convert("RGBA"))[..., 3].copy() if has_alpha else None
    return to_rgb(im), Look(grey, alpha)


def hole_from_array(hole, invert: bool = False) -> np.ndarray:
    """Bool HxW hole from a bool / uint8 / float array or a Pillow image (white = hole unless `invert`)."""
    if isinstance(hole, Image.Image):
        hole = to_rgb(hole, background=(0, 0, 0))
    a = np.asarray(hole)
    if a.ndim == 3:
        if a.dtype == bool:
            a = a.any(axis=2)
        else:  # ITU-R 601 luminance, as Pillow's convert("L")
            a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim != 2:
        raise PluralfillError(f"a hole must be a 2-D array, got shape {np.asarray(hole).shape}")
    if a.dtype == bool:
        out = a
    elif np.issubdtype(a.dtype, np.floating) and a.size and a.max() <= 1.0:
        out = a >= 0.5
    else:
        out = a >= HOLE_THRESHOLD
    return ~out if invert else out.copy()


def read_hole(
    path: str | os.PathLike,
    image_size: tuple[int, int] | None = None,
    invert: bool = False,
    resize: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """A mask file as a bool HxW array. `image_size` is (width, height); a mismatch is an error unless
    `resize`."""
    im = _open(path, max_pixels, "mask")
    if resize and image_size is not None and im.size != tuple(image_size):
        im = Image.fromarray(to_rgb(im, background=(0, 0, 0)))  # resized as RGB: a palette or alpha mask too
    return hole_from_array(_sized(im, path, image_size, resize, "mask"), invert=invert)


def _sized(im: Image.Image, path, image_size, resize: bool, what: str) -> Image.Image:
    if image_size is not None and im.size != tuple(image_size):
        if not resize:
            raise PluralfillError(
                f"{what} {path} is {im.size[0]}x{im.size[1]} but its image is {image_size[0]}x{image_size[1]} "
                "(pass --resize-mask to resize it with nearest neighbour)"
            )
        im = im.resize(tuple(image_size), Image.Resampling.NEAREST)
    return im


LABEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")  # one channel: what a map of class ids can be saved as


def grey_image(im: Image.Image) -> Image.Image:
    """A guidance picture's grey values (0-255), transparency on black."""
    return Image.fromarray(to_rgb(im, background=(0, 0, 0))).convert("L")


def label_image(im: Image.Image, named: str) -> Image.Image:
    """A label map as it is, or one line saying that `named` is not one."""
    if im.mode not in LABEL_MODES:
        raise PluralfillError(
            f"{named} is a {im.mode} image: a label map has one channel of class ids (save it as a grey or palette PNG)"
        )
    return im


def read_grey(
    path,
    image_size: tuple[int, int] | None = None,
    resize: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    what: str = "sketch",
) -> np.ndarray:
    """A guidance picture (a sketch, an edge map) as uint8 HxW grey values, transparency on black."""
    im = grey_image(_open(path, max_pixels, what))
    return np.asarray(_sized(im, path, image_size, resize, what)).copy()


def read_labels(
    path,
    image_size: tuple[int, int] | None = None,
    resize: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    what: str = "segmentation",
) -> np.ndarray:
    """A label map (one channel of class ids: a grey, palette or 16-bit PNG) as int64 HxW."""
    im = label_image(_open(path, max_pixels, what), f"{what} {path}")
    return np.asarray(_sized(im, path, image_size, resize, what)).astype(np.int64)


def check_hole(hole: np.ndarray, allow_full: bool, method: str = "this method") -> None:
    """An empty hole has nothing to fill; a full hole needs a method that generates from nothing."""
    if not hole.any():
        raise PluralfillError("the mask marks no missing pixel: nothing to fill (white = hole; see --invert-mask)")
    if hole.all() and not allow_full:
        raise PluralfillError(
            f"the mask marks every pixel as missing and {method} needs known pixels to fill from "
            "(white = hole; see --invert-mask)"
        )


def hole_ratio(hole: np.ndarray) -> float:
    return float(np.asarray(hole, dtype=bool).mean())


# ----------------------------------------------------------------------------------------------- writing


def check_writable(paths, overwrite: bool) -> None:
    """Refuse, before any work is done, to overwrite existing outputs unless asked."""
    if overwrite:
        return
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise PluralfillError(f"output exists: {existing[0]}{more} (pass --overwrite to replace)")


def check_apart(output: Path, inputs, what: str = "output") -> None:
    """Refuse an output folder that is, contains or lies inside one of the inputs: replacing it would delete
    what the command reads."""
    out = Path(output).resolve()
    for given in inputs:
        source = Path(given).resolve()
        if out == source or out in source.parents or (source.is_dir() and source in out.parents):
            relation = "is" if out == source else "contains" if out in source.parents else "lies inside"
            raise PluralfillError(f"the {what} {output} {relation} the input {given}: choose another {what} folder")


def check_replaceable(folder: Path, ours, what: str) -> None:
    """An existing folder may be replaced only if it holds nothing but what this command writes (`ours(name)`
    is True for each of its entries): never a folder of the user's own files."""
    folder = Path(folder)
    if not folder.is_dir():
        if folder.exists():
            raise PluralfillError(f"{folder} is a file, not a {what} folder")
        return
    foreign = sorted(p.name for p in folder.iterdir() if not ours(p.name))
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise PluralfillError(
            f"{folder} holds files that are not a {what} ({shown}): --overwrite replaces only a "
            f"folder pluralfill wrote; choose a new or empty folder"
        )


def replace_folder(new: Path, folder: Path) -> None:
    """Put the finished folder `new` at `folder` so that at every instant `folder` is the old folder or the new
    one, whole: Linux exchanges the two in one step (renameat2 with RENAME_EXCHANGE); elsewhere the old one is
    renamed aside first. The old folder is deleted after."""
    new, folder = Path(new), Path(folder)
    if not folder.exists():
        os.rename(new, folder)
        return
    if _exchange(new, folder):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old folder
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
    os.rename(folder, old / folder.name)
    os.rename(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    if sys.platform != "linux":
        return False
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def clean_leftovers(folder: Path, older_than_s: float = 3600) -> None:
    """Delete the temporary files and folders a killed run left in `folder` (`.NAME.*.tmp`, `.NAME.old.*`,
    `.NAME.*` staging folders), once they are older than any run still writing them could be."""
    import time

    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.glob(".*"):
        try:
            stale = time.time() - p.lstat().st_mtime > older_than_s
        except OSError:
            continue
        if stale and (p.name.endswith(".tmp") or ".old." in p.name or (p.is_dir() and p.name.count(".") >= 2)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


MAX_YAML_BYTES = 1 << 20


def read_yaml(path: Path, what: str = "config"):
    """A YAML file of settings: at most 1 MB, and no anchors or aliases (a config has no use for them, and they
    are how a small file expands without bound or refers to itself)."""
    import yaml

    path = Path(path)
    if path.stat().st_size > MAX_YAML_BYTES:
        raise PluralfillError(f"{path} is over {MAX_YAML_BYTES >> 20} MB: not a {what}")

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                raise PluralfillError(f"{path} uses a YAML alias (*name): a {what} spells every value out")
            return super().compose_node(parent, index)

    try:
        return yaml.load(path.read_text(), Loader=NoAliases)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:
        raise PluralfillError(f"cannot parse {path}: {str(e).splitlines()[0]}") from None


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write, overwrite: bool) -> None:
    """Write through a temporary file in the same folder, then rename: a reader never sees half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # name the folder, not the temporary file
        raise PluralfillError(f"cannot write into {path.parent}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode a plain open() would
        if overwrite:
            os.replace(tmp, path)
        else:
            try:  # link fails if the target appeared meanwhile: never clobber
                os.link(tmp, path)
            except FileExistsError:
                raise PluralfillError(f"output exists: {path} (pass --overwrite to replace)") from None
            except OSError:  # file systems without hard links
                if path.exists():
                    raise PluralfillError(f"output exists: {path} (pass --overwrite to replace)") from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def write_image(path: str | os.PathLike, image, overwrite: bool = False) -> Path:
    """Save a uint8 array (HxW or HxWx3) or Pillow image atomically; the format follows the extension."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise PluralfillError(f"cannot write {path}: unknown image extension (use one of {', '.join(_FORMATS)})")
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if fmt == "JPEG" and im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    # PNG level 3: a third of the time of the default level 6 for ~15% larger files (12 MP photos)
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {"compress_level": 3} if fmt == "PNG" else {}
    atomic_write(path, lambda f: im.save(f, format=fmt, **options), overwrite)
    return path


def write_hole(path: str | os.PathLike, hole: np.ndarray, overwrite: bool = False) -> Path:
    """A hole as a PNG in the on-disk convention: white (255) = missing."""
    return write_image(path, np.asarray(hole, dtype=bool).astype(np.uint8) * 255, overwrite)


def write_text(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")), overwrite)
    return Path(path)


# ----------------------------------------------------------------------------------------------- folders


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.exists():
        raise PluralfillError(f"folder not found: {folder}")
    if not folder.is_dir():
        raise PluralfillError(f"expected a folder but got a file: {folder}")
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def _is_mask_name(path: Path) -> bool:
    return "_mask" in path.stem


@dataclass(frozen=True)
class Job:
    """One image and one hole file to inpaint; `name` is the stem of the outputs."""

    name: str
    image: Path
    mask: Path


def find_jobs(
    inputs, mask: str | os.PathLike | None = None, mask_dir: str | os.PathLike | None = None
) -> tuple[list[Job], list[Path]]:
    """Pair images with masks. Returns (jobs, unpaired images).

    Inputs are image files or folders of them. A mask is found as (in order of the arguments given):
    one `mask` for every image; `mask_dir/<stem>.*`; or `<stem>_mask*.png` beside the image (LaMa layout;
    several such masks give one job each, named after the mask).
    """
    images: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = [q for q in list_images(p) if not _is_mask_name(q)]
            if not found:
                raise PluralfillError(f"{p} holds no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
            images += found
        elif p.exists():
            images.append(p)
        else:
            raise PluralfillError(f"image not found: {p}")
    if mask is not None:
        mask = Path(mask)
        if not mask.exists():
            raise PluralfillError(f"mask not found: {mask}")
        if mask.is_dir():
            raise PluralfillError(f"--mask expects a file; for a folder of masks use --mask-dir: {mask}")
    if mask_dir is not None:
        mask_dir = Path(mask_dir)
        if not mask_dir.is_dir():
            raise PluralfillError(f"--mask-dir is not a folder: {mask_dir}")
        by_stem: dict[str, Path] = {}
        for q in list_images(mask_dir):  # prefer .png when a stem exists in several formats
            if q.stem not in by_stem or q.suffix.lower() == ".png":
                by_stem[q.stem] = q

    jobs, unpaired = [], []
    for image in images:
        if mask is not None:
            jobs.append(Job(image.stem, image, mask))
        elif mask_dir is not None:
            if image.stem in by_stem:
                jobs.append(Job(image.stem, image, by_stem[image.stem]))
            else:
                unpaired.append(image)
        else:
            found = sorted(image.parent.glob(f"{image.stem}_mask*.png"))
            if len(found) == 1:
                jobs.append(Job(image.stem, image, found[0]))
            elif found:
                jobs += [Job(m.stem, image, m) for m in found]
            else:
                unpaired.append(image)
    names = [j.name for j in jobs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise PluralfillError(
            f"several inputs share the output name {sorted(dup)[0]!r}: rename one or use separate runs"
        )
    return jobs, unpaired

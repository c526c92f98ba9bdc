"""Weight files: where they come from, how they are checked, where they are cached.

A weight file is found in this order: an explicit path; the cache (`$PLURALFILL_HOME/weights`, default
`~/.cache/pluralfill/weights`); its canonical URL, checked against its sha256 before it is kept.
`PLURALFILL_OFFLINE=1` skips the download. With no file, the error says every place that was tried.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from pluralfill.errors import PluralfillError


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    url: str
    sha256: str | None  # full digest, or the prefix the file name carries (torch.hub convention); None: not pinned
    what: str


WEIGHTS: dict[str, WeightFile] = {
    w.name: w
    for w in [
        WeightFile(
            "alexnet",
            "alexnet-owt-7be5be79.pth",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "7be5be79",
            "ImageNet AlexNet (torchvision key names), the LPIPS-alex backbone",
        ),
        WeightFile(
            "vgg16",
            "vgg16-397923af.pth",
            "https://download.pytorch.org/models/vgg16-397923af.pth",
            "397923af",
            "ImageNet VGG-16 (torchvision key names), the LPIPS-vgg and MHTMA perceptual backbone",
        ),
        WeightFile(
            "vgg19",
            "vgg19-dcbb9e9d.pth",
            "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            "dcbb9e9d",
            "ImageNet VGG-19 (torchvision key names), the PUT perceptual and style backbone",
        ),
        WeightFile(
            "inception-fid",
            "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            "6726825d",
            "the TensorFlow FID Inception-v3 ported by pytorch-fid (pool3, 2048-d)",
        ),
        WeightFile(
            "lpips-alex",
            "lpips-v0.1-alex.pth",
            "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/alex.pth",
            "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            "LPIPS v0.1 linear heads for AlexNet",
        ),
        WeightFile(
            "lpips-vgg",
            "lpips-v0.1-vgg.pth",
            "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/vgg.pth",
            "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
            "LPIPS v0.1 linear heads for VGG-16",
        ),
        WeightFile(
            "pidinet",
            "table5_pidinet.pth",
            "https://huggingface.co/lllyasviel/Annotators/resolve/main/table5_pidinet.pth",
            None,  # not pinned yet: nobody on the team could download it to take its digest
            "PiDiNet edge detector (BSDS500, carv4, the official table5_pidinet.pth) for sketches",
        ),
    ]
}


def home() -> Path:
    return Path(os.environ.get("PLURALFILL_HOME", Path.home() / ".cache" / "pluralfill"))


def cache_dir() -> Path:
    return home() / "weights"


def models_dir() -> Path:
    """Where `pluralfill models add` installs converted models: one folder per name."""
    return home() / "models"


def installed_models() -> dict[str, Path]:
    """Models installed in the store: name -> folder (config.json + model.safetensors)."""
    root = models_dir()
    found = sorted(root.iterdir()) if root.is_dir() else []
    return {p.name: p for p in found if not p.name.startswith(".") and (p / "config.json").is_file()}  # .x: temporary


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(w: WeightFile, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{w.filename}.", dir=dst.parent)
    os.close(fd)
    timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)  # a stalled connection fails instead of hanging forever
    try:
        torch.hub.download_url_to_file(w.url, tmp, progress=True)
        digest = sha256_of(Path(tmp))
        if w.sha256 is None:
            import warnings

            warnings.warn(f"{w.filename} has no pinned sha256; downloaded file has {digest}", stacklevel=2)
        elif not digest.startswith(w.sha256):
            raise PluralfillError(f"download of {w.url} has sha256 {digest[:16]}..., expected {w.sha256[:16]}...")
        os.replace(tmp, dst)
    finally:
        socket.setdefaulttimeout(timeout)
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve(name: str, path: str | os.PathLike | None = None, download: bool | None = None) -> Path:
    """The local file of weights `name`: explicit `path`, else the cache, else downloaded into the cache."""
    w = WEIGHTS[name]
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise PluralfillError(f"{w.name} weights not found at {path}")
        return path
    cached = cache_dir() / w.filename
    if cached.is_file():
        return cached
    if download is None:
        download = os.environ.get("PLURALFILL_OFFLINE", "") in ("", "0")
    reason = "offline (PLURALFILL_OFFLINE is set)"
    if download:
        try:
            _download(w, cached)
            return cached
        except PluralfillError:
            raise
        except Exception as e:  # network errors come in many types; all mean the same to a user
            reason = f"download failed: {type(e).__name__}: {e}".splitlines()[0]
    raise PluralfillError(
        f"{w.what} ({w.filename}) is needed: pass its path, or put it in {cache_dir()}, or let pluralfill "
        f"download it from {w.url} ({reason})"
    )


def is_available(name: str, path: str | os.PathLike | None = None) -> bool:
    """Whether weights `name` can be had without a download: given explicitly, or already in the cache."""
    return path is not None or (cache_dir() / WEIGHTS[name].filename).is_file()


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file (also xz-compressed, `.safetensors.xz`), or a .pth/.pt file read
    without unpickling code."""
    path = Path(path)
    if path.name.endswith((".safetensors", ".safetensors.xz")):
        import lzma

        from safetensors.torch import load

        try:
            data = lzma.decompress(path.read_bytes()) if path.suffix == ".xz" else path.read_bytes()
            return load(data)
        except Exception as e:  # lzma, OS and safetensors' own error types alike
            raise PluralfillError(f"cannot read weights {path}: {type(e).__name__}: {e}".splitlines()[0]) from None
    obj = read_pickle(path, "a .pth of tensors")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise PluralfillError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj


def read_pickle(path: Path, expected: str):
    """A .pth/.ckpt file read with torch's weights-only unpickler: tensors, numbers, strings and containers,
    never code. A file that asks for more, or is no PyTorch file, is refused in one line that says so."""
    import pickle
    import re
    import zipfile

    if zipfile.is_zipfile(path):  # torch's format: what it unpacks to is bounded by what the file holds
        with zipfile.ZipFile(path) as z:
            unpacked = sum(i.file_size for i in z.infolist())
        size = Path(path).stat().st_size
        if unpacked > 4 * size + (64 << 20):
            raise PluralfillError(
                f"{path} would unpack to {unpacked / 2**30:.1f} GB from {size / 2**20:.1f} MB: a "
                f"checkpoint does not compress like that; refused (expected {expected})"
            )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # the weights-only unpickler met something it will not build
        named = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({named.group(1)})" if named else ""
        raise PluralfillError(
            f"{path} is a pickle that asks to build objects beyond tensors{what}: refused, since unpickling it could "
            f"run code; expected {expected}"
        ) from None
    except Exception as e:
        first = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise PluralfillError(f"cannot read {path} as {expected} (truncated, or not a PyTorch file): {first}") from None


def load_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], source) -> torch.nn.Module:
    """Load `state` into `module`; any missing, unexpected or misshapen key is an error that names it."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise PluralfillError(f"{source} does not fit: {str(e).splitlines()[-1].strip()}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]  # absent in old files
    if missing or result.unexpected_keys:
        parts = [f"missing {', '.join(missing[:5])}"] if missing else []
        parts += [f"unexpected {', '.join(result.unexpected_keys[:5])}"] if result.unexpected_keys else []
        raise PluralfillError(f"{source} does not fit: {'; '.join(parts)}")
    return module


def load_weights(
    module: torch.nn.Module, name: str, path: str | os.PathLike | None = None, ignore: tuple[str, ...] = ()
) -> torch.nn.Module:
    """Resolve weights `name` and load them into `module`; keys starting with a prefix in `ignore` (a
    classifier head we do not build) are dropped, any other mismatch is reported by name."""
    file = resolve(name, path)
    state = {k: v for k, v in load_state_dict(file).items() if not k.startswith(ignore)}
    return load_checked(module, state, f"{file} ({name})").eval()

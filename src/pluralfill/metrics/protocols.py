"""The evaluation protocols of the papers, as presets: which masks, bins, samples, sampling options, metrics and
FID network a published table used, so that a number made here says how it was made and can be made again.

A protocol's masks are prepared once for a folder of test images (`pluralfill masks protocol`): a generated set
is drawn from our mask generator with the protocol's seed (exactly reproducible); a downloaded set is checked
for its published layout and assigned to the images in a fixed order. Either way the folder gets
`protocol.json` (the protocol, the set, the source's fingerprint and every mask file's sha256), and
`evaluate --protocol` refuses masks that were prepared for another protocol or set, or changed since.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pluralfill import io
from pluralfill.errors import PluralfillError
from pluralfill.hub import sha256_of

MANIFEST = "protocol.json"


@dataclass(frozen=True)
class MaskSet:
    name: str
    what: str
    size: int  # the test images' side, and the masks'
    preset: str | None = None  # generated: our preset and its seed
    seed: int = 0
    source_pattern: str | None = None  # downloaded: the files' names
    source_size: int | None = None  # downloaded: every file's side
    source_count: int | None = None  # downloaded: the whole set


@dataclass(frozen=True)
class Protocol:
    name: str
    paper: str
    mask_sets: tuple[MaskSet, ...]
    bins: tuple[tuple[float, float], ...]
    samples: int
    options: dict = field(default_factory=dict)  # sampling options of the paper's runs
    metrics: tuple[str, ...] = ("fid", "p-ids", "u-ids")
    gray_ssim: bool = False
    fid_network: str = "pytorch-fid's port of the TensorFlow FID Inception-v3 (pt_inception-2015-12-05)"
    note: str = ""

    def mask_set(self, name: str) -> MaskSet:
        found = {m.name: m for m in self.mask_sets}
        if name not in found:
            raise PluralfillError(f"protocol {self.name} has no mask set {name!r}; it has: {', '.join(found)}")
        return found[name]


PCONV = MaskSet(
    "pconv",
    "the NVIDIA irregular test masks of Partial Convolutions (Liu et al. 2018; testing_mask_dataset, "
    "12,000 PNGs of 512x512)",
    256,
    source_pattern=r"^\d{5}\.png$",
    source_size=512,
    source_count=12000,
)
PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in [
        Protocol(
            "put",
            "PUT (Liu et al., CVPR 2022), Table 1: FFHQ, Places2, ImageNet test images at 256",
            (PCONV,),
            bins=((0.2, 0.4), (0.4, 0.6), (0.1, 0.6)),
            samples=10,
            options={"top_k": 50},
            metrics=("fid", "p-ids", "u-ids", "ssim", "psnr", "lpips"),
            gray_ssim=True,
            note="SSIM on luma (cv2's RGB to grey), as PUT's cal_metrics; PUT's FID code is a copy of pytorch-fid",
        ),
        Protocol(
            "lama",
            "LaMa (Suvorov et al., WACV 2022): Places and CelebA-HQ test images with thin / medium / thick masks",
            tuple(
                MaskSet(
                    f"{w}-{s}",
                    f"LaMa's {w} masks at {s} px, drawn by pluralfill's lama-{w} generator",
                    s,
                    preset=f"lama-{w}",
                    seed=2022,
                )
                for s in (256, 512)
                for w in ("thin", "medium", "thick")
            ),
            bins=(),
            samples=1,
            metrics=("fid", "lpips", "ssim", "psnr"),
            note="the masks are pluralfill's reimplementation of LaMa's generators with a fixed seed, not LaMa's own "
            "files",
        ),
        Protocol(
            "mat",
            "MAT (Li et al., CVPR 2022): Places (36,500 images) and CelebA-HQ at 512 with small and large masks",
            (
                MaskSet(
                    "small",
                    "MAT's small test masks (512x512 files you provide)",
                    512,
                    source_pattern=r".*\.png$",
                    source_size=512,
                ),
                MaskSet(
                    "large",
                    "MAT's large test masks (512x512 files you provide)",
                    512,
                    source_pattern=r".*\.png$",
                    source_size=512,
                ),
            ),
            bins=(),
            samples=1,
            metrics=("fid", "p-ids", "u-ids"),
            fid_network="pytorch-fid's port of the TensorFlow FID Inception-v3; MAT's numbers come from "
            "StyleGAN2-ADA's copy of "
            "the same network, which can differ in the last digits",
        ),
    ]
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise PluralfillError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def fingerprint(entries: dict[str, str]) -> str:
    """One sha256 for a set of files: over their sorted names and contents' sha256."""
    return hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in sorted(entries.items())).encode()).hexdigest()


def check_source(mask_set: MaskSet, folder: Path) -> tuple[list[Path], str]:
    """A downloaded set's files, checked for the published layout, and its fingerprint."""
    files = (
        sorted(p for p in Path(folder).iterdir() if p.is_file() and re.match(mask_set.source_pattern, p.name))
        if Path(folder).is_dir()
        else []
    )
    if not files:
        raise PluralfillError(f"{folder} holds no files like {mask_set.name}'s ({mask_set.what})")
    if mask_set.source_count is not None and len(files) > mask_set.source_count:
        raise PluralfillError(
            f"{folder} holds {len(files)} masks; {mask_set.name} has {mask_set.source_count}: not {mask_set.what}"
        )
    for p in files:
        w, h = io.image_size(p)
        if (w, h) != (mask_set.source_size, mask_set.source_size):
            raise PluralfillError(
                f"{p} is {w}x{h}; {mask_set.name} masks are {mask_set.source_size}x{mask_set.source_size}: not "
                f"{mask_set.what}"
            )
    return files, fingerprint({p.name: sha256_of(p) for p in files})


def prepare(
    protocol: Protocol, mask_set: MaskSet, images: Path, out: Path, source: Path | None = None, overwrite: bool = False
) -> dict:
    """One mask per test image (named like it, of its size) in `out`, and `out/protocol.json`."""
    from pluralfill.masks.generate import generate_hole

    paths = io.list_images(images)
    names = [p.stem for p in paths]
    if not names:
        raise PluralfillError(f"no images in {images}")
    io.check_writable([out / f"{n}.png" for n in names] + [out / MANIFEST], overwrite)
    rows = {}
    if mask_set.preset is not None:
        if source is not None:
            raise PluralfillError(f"{mask_set.name} is generated: give no --source")
        for i, (name, path) in enumerate(zip(names, paths)):
            w, h = io.image_size(path)
            hole = generate_hole(mask_set.preset, (h, w), mask_set.seed, i)
            io.write_hole(out / f"{name}.png", hole, overwrite)
            rows[f"{name}.png"] = {"index": i}
        source_print = f"generated: preset {mask_set.preset}, seed {mask_set.seed}"
    else:
        if source is None:
            raise PluralfillError(f"{mask_set.name} is downloaded: give --source FOLDER ({mask_set.what})")
        files, source_print = check_source(mask_set, source)
        lo, hi = (min(b[0] for b in protocol.bins), max(b[1] for b in protocol.bins)) if protocol.bins else (0.0, 1.0)
        holes = [(p, io.read_hole(p)) for p in files]
        usable = [(p, h) for p, h in holes if lo < h.mean() <= hi]
        if not usable:
            raise PluralfillError(f"no mask in {source} has a hole ratio in ({lo:g}, {hi:g}]")
        from PIL import Image

        for i, (name, path) in enumerate(zip(names, paths)):
            p, hole = usable[(i * 7919) % len(usable)]  # a fixed spread over the set
            w, h = io.image_size(path)
            resized = (
                np.asarray(Image.fromarray(hole.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)) >= 128
            )
            io.write_hole(out / f"{name}.png", resized, overwrite)
            rows[f"{name}.png"] = {"source": p.name}
    for file, row in rows.items():
        row["sha256"] = sha256_of(out / file)
    manifest = {
        "protocol": protocol.name,
        "mask_set": mask_set.name,
        "source": source_print,
        "fingerprint": fingerprint({k: v["sha256"] for k, v in rows.items()}),
        "masks": rows,
    }
    io.write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n", overwrite)
    return manifest


def verify(protocol: Protocol, masks: Path, names: list[str]) -> dict:
    """The manifest of a mask folder prepared for `protocol`, after checking that it was, that the set is one of
    the protocol's, and that every mask the evaluation reads is the one recorded (generated ones are drawn
    again and compared)."""
    path = Path(masks) / MANIFEST
    if not path.is_file():
        raise PluralfillError(
            f"{masks} was not prepared for a protocol (no {MANIFEST}): `pluralfill masks protocol {protocol.name} ...` "
            f"makes it"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("protocol") != protocol.name:
        raise PluralfillError(f"{masks} holds masks for protocol {manifest.get('protocol')!r}, not {protocol.name}")
    mask_set = protocol.mask_set(manifest.get("mask_set", "?"))
    recorded = manifest.get("masks", {})
    for name in names:
        file = f"{name}.png"
        if file not in recorded:
            raise PluralfillError(f"{masks}/{file} is not one of the protocol's masks ({MANIFEST} does not list it)")
        if sha256_of(Path(masks) / file) != recorded[file]["sha256"]:
            raise PluralfillError(f"{masks}/{file} changed since it was prepared for {protocol.name} ({mask_set.name})")
        if mask_set.preset is not None:
            from pluralfill.masks.generate import generate_hole

            hole = io.read_hole(Path(masks) / file)
            if not np.array_equal(
                hole, generate_hole(mask_set.preset, hole.shape, mask_set.seed, recorded[file]["index"])
            ):
                raise PluralfillError(f"{masks}/{file} is not the {mask_set.name} mask it claims to be")
    return manifest | {"fingerprint": fingerprint({k: v["sha256"] for k, v in recorded.items() if k[:-4] in names})}


def provenance(protocol, manifest: dict, items, metrics: list[str], weights: dict) -> dict:
    """How a protocol's number was made, to be written beside it."""
    import platform

    import torch

    from pluralfill import __version__
    from pluralfill.hub import resolve, sha256_of

    fid = None
    if {"fid", "p-ids", "u-ids"} & set(metrics):
        fid = {
            "network": protocol.fid_network,
            "weights_sha256": sha256_of(resolve("inception-fid", weights.get("inception"))),
        }
    samples = sorted({len(i.samples) for i in items})
    return {
        "protocol": protocol.name,
        "paper": protocol.paper,
        "mask_set": manifest["mask_set"],
        "mask_source": manifest["source"],
        "mask_fingerprint": manifest["fingerprint"],
        "images": len(items),
        "samples_per_image": samples[0] if len(samples) == 1 else samples,
        "protocol_samples": protocol.samples,
        "fid": fid,
        "ssim": "luma" if protocol.gray_ssim else "rgb",
        "note": protocol.note,
        "pluralfill": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }

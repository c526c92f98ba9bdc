"""Sketches from photos (Zhou et al. 2023, IV-F): the lines a sketch-guided model is trained on, and what a user
gets to start from. Three steps after an edge map:

    edges (0..1) -> edges > threshold -> area opening (drop 8-connected pieces under min_area px)
                 -> skeletonization (one-pixel lines)

The edge map comes from PiDiNet when its weights are given, else from a classical detector: the gradient
magnitude of the smoothed grey image, scaled so its 98th percentile is 1 (a threshold of 0.65 then keeps
the strong edges of most photos).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCE_SIZE = 256  # min_area is given in pixels at this size and scaled with the image's side


@dataclass
class Sketch:
    edges: np.ndarray  # float32 HxW in [0, 1]
    binary: np.ndarray  # bool HxW: edges above the threshold
    opened: np.ndarray  # bool HxW: small pieces removed
    lines: np.ndarray  # bool HxW: the skeleton, the sketch itself

    def steps(self) -> list[np.ndarray]:
        """The four stages as uint8 grey images, for a strip."""
        return [(self.edges * 255).round().astype(np.uint8)] + [
            a.astype(np.uint8) * 255 for a in (self.binary, self.opened, self.lines)
        ]


def classical_edges(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """uint8 HxWx3 -> float32 HxW in [0, 1]: Sobel magnitude of the Gaussian-smoothed grey image."""
    from skimage.color import rgb2gray
    from skimage.filters import gaussian, sobel

    magnitude = sobel(gaussian(rgb2gray(image), sigma=sigma))
    scale = np.percentile(magnitude, 98)
    return np.clip(magnitude / scale, 0, 1).astype(np.float32) if scale > 0 else np.zeros(image.shape[:2], np.float32)


def pidinet_edges(image: np.ndarray, model) -> np.ndarray:
    import torch

    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255).to(device)
    with torch.no_grad():
        return model(x)[0, 0].float().cpu().numpy()


def extract_sketch(
    image: np.ndarray, threshold: float = 0.65, min_area: int = 100, detector=None, scale_area: bool = True
) -> Sketch:
    """The sketch of a uint8 RGB image. `detector`: a PiDiNet (see `nn.pidinet.load_pidinet`) or None for
    the classical edges. `min_area` is in pixels of a 256-px image, scaled with the image unless
    `scale_area=False` (the lines are one pixel wide, so their area grows with the side, not its square)."""
    from skimage.morphology import area_opening, skeletonize

    edges = pidinet_edges(image, detector) if detector is not None else classical_edges(image)
    binary = edges > threshold
    area = max(1, round(min_area * min(image.shape[:2]) / REFERENCE_SIZE)) if scale_area else min_area
    opened = area_opening(binary.astype(np.uint8), area_threshold=area, connectivity=2).astype(bool)
    return Sketch(edges, binary, opened, skeletonize(opened))


def write_sketch(
    image_path,
    output,
    threshold: float = 0.65,
    min_area: int = 100,
    pidinet=None,
    device: str = "cpu",
    max_pixels: int | None = None,
    overwrite: bool = False,
) -> tuple[Sketch, object]:
    """`pluralfill sketch`: the sketch of a photo file as OUTPUT (white lines on black) and OUTPUT_steps.png
    (photo | edge map | thresholded | area opened | skeleton). Returns the sketch and the steps file."""
    from pathlib import Path

    from pluralfill import io
    from pluralfill.errors import PluralfillError
    from pluralfill.grid import grid_rows

    if not 0 < threshold < 1:
        raise PluralfillError(f"--threshold must be between 0 and 1, got {threshold}")
    output = Path(output)
    steps_path = output.with_name(f"{output.stem}_steps.png")
    io.check_writable([output, steps_path], overwrite)
    photo = io.read_image(image_path, max_pixels)
    if min(photo.shape[:2]) < 16:
        raise PluralfillError(
            f"{image_path} is {photo.shape[1]}x{photo.shape[0]}: a sketch needs a photo of at least 16x16 px"
        )
    detector = None
    if pidinet is not None:
        from pluralfill.nn.pidinet import load_pidinet

        detector = load_pidinet(pidinet, device)
    sketch = extract_sketch(photo, threshold, min_area, detector)
    io.write_hole(output, sketch.lines, overwrite)
    io.write_image(
        steps_path, grid_rows([[photo] + [np.repeat(a[..., None], 3, axis=2) for a in sketch.steps()]]), overwrite
    )
    return sketch, steps_path

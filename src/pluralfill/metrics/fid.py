"""FID (Heusel et al. 2017) and P-IDS / U-IDS (Zhao et al., ICLR 2021) on Inception pool3 features."""

from __future__ import annotations

import os

import numpy as np
import torch

from pluralfill.hub import load_weights
from pluralfill.nn.inception import FIDInceptionV3


def load_inception(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The FID Inception-v3 with pytorch-fid's weights, found as `pluralfill.pretrained.resolve` says."""
    return load_weights(FIDInceptionV3(), "inception-fid", path).to(device)


@torch.no_grad()
def inception_features(model: FIDInceptionV3, images, batch_size: int = 32) -> np.ndarray:
    """uint8 HxWx3 images (a list or iterable of equally sized arrays) -> (N, 2048) float64 features."""
    device = next(model.parameters()).device
    out, batch = [], []

    def flush():
        x = torch.from_numpy(np.stack(batch)).to(device).permute(0, 3, 1, 2).float() / 255
        out.append(model(x).double().cpu().numpy())
        batch.clear()

    for im in images:
        batch.append(np.asarray(im))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return np.concatenate(out) if out else np.zeros((0, 2048))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrtm(sigma1 @ sigma2)) for symmetric PSD matrices, through symmetric eigendecompositions:
    sigma1 @ sigma2 has the eigenvalues of sqrt(sigma1) @ sigma2 @ sqrt(sigma1), which is PSD, so its
    square root's trace is the sum of their square roots. Stabler than a general sqrtm."""
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("FID needs at least 2 images on each side")
    return frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))


def ids_from_features(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """(P-IDS, U-IDS): a linear SVM separates real from fake features; U-IDS is its error rate, P-IDS the
    chance that a fake scores as more real than its paired real image. Higher is better for both."""
    from sklearn.svm import LinearSVC

    n = min(len(real), len(fake))
    real, fake = real[:n], fake[:n]
    svm = LinearSVC(dual=False)
    svm.fit(np.concatenate([real, fake]), np.r_[np.ones(n), np.zeros(n)])
    r, f = svm.decision_function(real), svm.decision_function(fake)
    u_ids = 0.5 * (float(np.mean(r < 0)) + float(np.mean(f > 0)))
    p_ids = float(np.mean(f > r))
    return p_ids, u_ids

"""Quality and diversity metrics: pixel metrics (no weights), LPIPS, FID and P-IDS / U-IDS."""

from pluralfill.metrics.pixel import mae, psnr, ssim

__all__ = ["mae", "psnr", "ssim"]

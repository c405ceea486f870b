"""Active units of a latent code (Burda et al. 2016, "Importance Weighted Autoencoders", sec. 5.2).

A latent dimension j is active when the posterior mean moves with the data:

    A_u = Cov_x(E_{q(z|x)}[z_j]) > delta,   delta = 0.01.

:class:`LatentVariance` accumulates sums of the codes and their squares over batches (and, under
DDP, over ranks, through torchmetrics' state reduction) and returns the per-dimension variance;
:func:`active_units` counts the dimensions above the threshold.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["BURDA_THRESHOLD", "LatentVariance", "active_units"]

BURDA_THRESHOLD = 0.01


def active_units(variance: Tensor, threshold: float = BURDA_THRESHOLD) -> int:
    """Number of dimensions whose variance (D,) exceeds ``threshold``."""
    return int((variance > threshold).sum())


class LatentVariance(Metric):
    """Unbiased per-dimension variance of (B, D) codes, accumulated in float64.

    Args:
        latent_dim: D, the number of dimensions of the codes.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    count: Tensor
    total: Tensor
    total_sq: Tensor

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = latent_dim
        zeros = torch.zeros(latent_dim, dtype=torch.float64)
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", zeros.clone(), dist_reduce_fx="sum")
        self.add_state("total_sq", zeros.clone(), dist_reduce_fx="sum")

    def update(self, codes: Tensor) -> None:
        """Add a batch of codes (B, D)."""
        if codes.ndim != 2 or codes.shape[1] != self.latent_dim:
            raise ValueError(
                f"expected codes of shape (B, {self.latent_dim}), got {tuple(codes.shape)}"
            )
        c = codes.detach().to(torch.float64)
        self.count += len(c)
        self.total += c.sum(0)
        self.total_sq += c.pow(2).sum(0)

    def compute(self) -> Tensor:
        """The variance of every dimension, (D,) float64."""
        if self.count < 2:
            raise RuntimeError("LatentVariance needs at least 2 codes before compute()")
        mean = self.total / self.count
        return ((self.total_sq - self.count * mean.pow(2)) / (self.count - 1)).clamp_min(0)

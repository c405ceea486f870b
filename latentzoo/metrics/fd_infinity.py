"""FD-infinity: the Fréchet distance extrapolated to infinitely many samples (Chong & Forsyth
2020, "Effectively Unbiased FID and Inception Score and where to find them", sec. 3).

The Fréchet distance of two finite samples is biased upward, by an amount that falls as 1/n:
FID_n = FD_inf + c / n. Computed at several subset sizes n and fitted by least squares in 1/n,
the intercept is the distance the two distributions have, the number that compares across sample
counts; a table at 500 samples and one at 10,000 then speak of the same quantity.

Chong & Forsyth subsample the generated side only, against the statistics of 50,000 real
images. Here both sides are subsampled to the same n (at most the smaller set): with a few
thousand real images the real side's own bias is as large as the generated side's, and
extrapolating both removes both. ``tests/metrics/test_fd_infinity.py`` checks the estimate
against the closed-form distance of two Gaussians at n = 500, 2,000 and 10,000.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from latentzoo.metrics.frechet import frechet_distance_between
from latentzoo.metrics.registry import MetricKey, register_feature_metric

__all__ = ["FULL_PROTOCOL", "fd_infinity", "fid_by_subset_size", "joins_fid"]

# Samples against real images in the VAE literature's FID (Dai & Wipf); below it, FD-infinity
# is reported beside FID.
FULL_PROTOCOL = 10_000


def joins_fid(num_samples: int, num_real: int, metrics: Iterable[str]) -> bool:
    """Whether FD-infinity is computed beside FID: where FID is, at fewer than 10,000 samples or
    real images (FID there compares only with FID at the same N; FD-infinity with any)."""
    return "fid" in metrics and min(num_samples, num_real) < FULL_PROTOCOL


def fid_by_subset_size(
    real: Tensor, fake: Tensor, points: int, smallest: float, seed: int
) -> tuple[Tensor, Tensor]:
    """(n, FID_n) at ``points`` subset sizes n from ``smallest`` x N to N = min(len(real),
    len(fake)), each n drawn at random from both sets (one generator seeded with ``seed``)."""
    n_max = min(len(real), len(fake))
    sizes = torch.linspace(max(2.0, smallest * n_max), n_max, points).round().long().unique()
    gen = torch.Generator().manual_seed(seed)
    fids = []
    for n in sizes.tolist():
        r = real[torch.randperm(len(real), generator=gen)[:n].to(real.device)]
        f = fake[torch.randperm(len(fake), generator=gen)[:n].to(fake.device)]
        fids.append(frechet_distance_between(r, f))
    return sizes.double(), torch.stack(fids).double().cpu()


@register_feature_metric(
    "fd_infinity",
    (MetricKey("fd_inf", ("sampler", "extractor"), "lower", "FD-infinity (FID at N -> inf)"),),
    default=False,  # ten Fréchet distances: asked for where the sample count is small
)
def fd_infinity(
    real: Tensor, fake: Tensor, *, seed: int = 0, points: int = 10, smallest: float = 0.2
) -> dict[str, Tensor]:
    """FD-infinity: FID at several subset sizes, extrapolated linearly in 1/n to n -> inf."""
    sizes, fids = fid_by_subset_size(real, fake, points, smallest, seed)
    if len(sizes) < 2:
        return {"fd_inf": fids[-1]}
    design = torch.stack([torch.ones_like(sizes), 1.0 / sizes], 1)  # (P, 2): FID = a + c / n
    coef = torch.linalg.lstsq(design, fids[:, None]).solution  # (2, 1)
    return {"fd_inf": coef[0, 0]}

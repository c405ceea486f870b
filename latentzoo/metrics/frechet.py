"""Fréchet distance between Gaussians fitted to two sets of features, in float64.

Heusel et al. 2017 (TTUR), eq. (6): for N(mu1, S1) and N(mu2, S2),

    d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}).

tr((S1 S2)^{1/2}) is computed as the sum of square roots of the eigenvalues of the symmetric
PSD matrix S1^{1/2} S2 S1^{1/2}, which has the same spectrum as S1 S2 and, unlike ``sqrtm`` of a
non-symmetric product, never returns complex parts from round-off.

These are the pure functions; metric objects that accumulate features across batches and DDP
ranks wrap them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["frechet_distance", "frechet_distance_between", "mean_cov"]


def mean_cov(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N, D) features with N >= 2, got shape {tuple(features.shape)}")
    f = features.detach().to(torch.float64)
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def _psd_sqrt(s: Tensor) -> Tensor:
    eigval, eigvec = torch.linalg.eigh(s)
    return (eigvec * eigval.clamp_min(0).sqrt()) @ eigvec.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), a float64 scalar."""
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    sigma1, sigma2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"feature dimensions differ: means {tuple(mu1.shape)} vs {tuple(mu2.shape)}, "
            f"covariances {tuple(sigma1.shape)} vs {tuple(sigma2.shape)}"
        )
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    middle = 0.5 * (middle + middle.T)  # symmetric up to round-off; make it exactly so
    tr_covmean = torch.linalg.eigvalsh(middle).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return diff @ diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_covmean


def frechet_distance_between(a: Tensor, b: Tensor) -> Tensor:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D)."""
    return frechet_distance(*mean_cov(a), *mean_cov(b))

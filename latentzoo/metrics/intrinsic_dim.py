"""Intrinsic dimension of a sample, and the share of it that is lower-dimensional than a reference.

Levina & Bickel 2004, "Maximum Likelihood Estimation of Intrinsic Dimension", eq. (8): with
T_1(x) <= ... <= T_k(x) the distances from x to its k nearest other points, the local MLE of the
dimension m is

    1 / m_k(x) = 1/(k - 1) sum_{j=1}^{k-1} log(T_k(x) / T_j(x)),

an unbiased estimate of 1/m under their Poisson-process model. :func:`intrinsic_dim` averages
these *inverse* local estimates over the points and inverts the mean (MacKay & Ghahramani 2005,
"Comments on 'Maximum Likelihood Estimation of Intrinsic Dimension'": averaging m_k(x) itself is
biased up); an n-dimensional manifold reads about n. The estimate is biased low in high
dimensions at a fixed number of points: N(0, I_64) reads about 36 at N = 10,000. So the dimension
of codes is only compared with that of as many draws of the prior, by the same estimator.

:func:`full_dim_share` is that comparison per point. The codes' local inverse dimensions are a
mixture (1 - pi) F_prior + pi F_low of the prior's distribution and that of a lower-dimensional
part; the largest weight of F_prior the codes can hold is (Blanchard, Lee & Scott 2010, "Semi-
Supervised Novelty Detection", sec. 3; Scott 2015, "A Rate of Convergence for Mixture Proportion
Estimation") the smallest ratio F_codes(A) / F_prior(A) over sets A, here the prior's upper tails
of local dimension (where a lower-dimensional part puts no points).

Neighbours are searched in float32 matrix-product blocks (``chunk`` rows at a time against all
points, O(chunk N) memory) and their distances recomputed exactly in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["full_dim_share", "intrinsic_dim", "knn_distances", "local_inverse_dim"]

# Upper tails of the prior's local dimension compared in :func:`full_dim_share`: the top 50%,
# 25% and 10% (1,000 points at N = 10,000, so each ratio is good to about 3%).
TAILS = (0.5, 0.25, 0.1)


def knn_distances(x: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Sorted distances from each row to its k nearest other rows, (N, D) -> (N, k) float64.

    Exact duplicates are neighbours at distance 0.
    """
    if x.ndim != 2 or not 1 <= k < len(x):
        raise ValueError(f"need (N, D) points with N > k = {k}, got {tuple(x.shape)}")
    x64 = x.detach().double().cpu()
    x32 = (x64 - x64.mean(0)).float()  # centred: smaller norms, less round-off in the search
    sq = (x32 * x32).sum(1)  # (N,)
    out = torch.empty(len(x), k, dtype=torch.float64)
    for r0 in range(0, len(x), chunk):
        rows = x32[r0 : r0 + chunk]  # (c, D)
        # |x_i - x_j|^2 - |x_i|^2 = |x_j|^2 - 2 x_i . x_j: the same order along each row
        d2 = torch.addmm(sq[None], rows, x32.T, alpha=-2)  # (c, N)
        d2[torch.arange(len(rows)), torch.arange(r0, r0 + len(rows))] = torch.inf  # not itself
        idx = d2.topk(k, dim=1, largest=False).indices  # (c, k)
        exact = (x64[idx] - x64[r0 : r0 + chunk, None]).norm(dim=2)  # (c, k), float64
        out[r0 : r0 + chunk] = exact.sort(dim=1).values
    return out


def local_inverse_dim(dist: Tensor) -> Tensor:
    """1 / m_k(x) of Levina & Bickel per row of (N, k) sorted neighbour distances, (N,).

    Neighbours at distance 0 (duplicates of the point) are left out of the row's estimate, which
    then uses the k' > 0 others: codes drawn in float32 repeat a value now and then (a 1-d code
    of 10,000 draws has a few exact ties), and one such tie must not turn the global estimate
    :func:`intrinsic_dim` into 0. +inf (dimension 0) where fewer than 3 neighbours are apart
    from the point: it sits in a cluster of duplicates.
    """
    k = dist.shape[1]
    if k < 3:
        raise ValueError(f"need k >= 3 neighbours for the Levina-Bickel estimate, got {k}")
    apart = dist > 0  # (N, k)
    count = apart.sum(1)  # k' per row
    logs = torch.where(apart, dist.clamp_min(torch.finfo(dist.dtype).tiny).log(), 0.0)
    last = logs[:, -1:]  # log T_k (the farthest neighbour is apart wherever count >= 1)
    inv = (apart * (last - logs)).sum(1) / (count - 1).clamp_min(1)  # (N,)
    return torch.where(count < 3, torch.inf, inv)


def intrinsic_dim(inverse_dims: Tensor) -> Tensor:
    """MacKay & Ghahramani's global estimate 1 / mean_x(1 / m_k(x)), a float64 scalar."""
    return 1 / inverse_dims.mean()


def full_dim_share(codes_inverse: Tensor, prior_inverse: Tensor, min_count: int = 100) -> Tensor:
    """Most of the codes that can be full-dimensional like the prior's draws, in [0, 1].

    min over the prior's upper tails A of local dimension (:data:`TAILS`) of
    F_codes(A) / F_prior(A): 1 (within a few %) where the codes are drawn like the prior, near 0
    where they lie on a lower-dimensional set; 1 minus it is the lower-dimensional share. A tail
    counts only if it holds ``min_count`` prior points (a ratio good to 10% or better); with
    fewer than 200 points in all, none does and the share is 1: too few codes to tell.

    Args:
        codes_inverse: (N,) local inverse dimensions of N codes among themselves.
        prior_inverse: (N,) the same of as many prior draws among themselves.
        min_count: Fewest prior points in a compared tail.
    """
    tails = [t for t in TAILS if t * len(prior_inverse) >= min_count]
    if not tails:
        return torch.tensor(1.0, dtype=torch.float64)
    q = torch.tensor(tails, dtype=torch.float64)
    finite_max = torch.finfo(torch.float64).max
    cuts = torch.quantile(prior_inverse.clamp_max(finite_max), q)  # (T,)
    in_codes = (codes_inverse[:, None] < cuts[None]).double().mean(0)  # (T,)
    in_prior = (prior_inverse[:, None] < cuts[None]).double().mean(0).clamp_min(1e-12)
    return (in_codes / in_prior).min().clamp_max(1.0)

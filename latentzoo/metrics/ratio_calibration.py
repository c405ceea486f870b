"""Density ratios from scores: binning, its monotone version, and the choice among scores.

Zadrozny & Elkan 2002, "Transforming Classifier Scores into Accurate Multiclass Probability
Estimates": sort the pooled samples of q and p by a score s(z) computed alike for both, cut them
into bins of equal count, and read q/p in a bin from its share c of q-samples,

    log q/p = log c / (1 - c) + log N_p / N_q.

That is the ratio of the score's distributions, E_p[q/p | s], exact out of sample for any score;
where q is absent the bin holds no q-sample and reads 0. A monotone score (a fitted logit) is
calibrated *isotonically*: the shares are made non-decreasing by pool-adjacent-violators.

:func:`best_log_ratio` picks among several scores the one whose calibration predicts held-out
labels best (logistic loss on the other half of the samples, Laplace-smoothed shares): the score
that tells q from p best. Taking the smallest ratio over scores instead would read a smooth
ratio's threshold crossing once per score, each with its own noise, and overstate it (by half,
for N(0, 1.3^2 I_16) against N(0, I_16)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["BinnedRatio", "best_log_ratio", "binned_log_ratio", "calibrated_log_ratio"]


@dataclass(frozen=True)
class BinnedRatio:
    """A fitted score -> log q/p map: bin edges (B - 1,), q-counts and counts per bin (B,)."""

    edges: Tensor
    q_count: Tensor
    count: Tensor
    log_prior: float  # log N_p / N_q of the samples it was fitted on

    def share(self, scores: Tensor, smooth: bool = False) -> Tensor:
        """The q-share of each score's bin; ``smooth``: (q + 1/2) / (n + 1) (never 0 or 1)."""
        b = torch.bucketize(scores.double(), self.edges, right=True)  # edge j opens bin j + 1
        return ((self.q_count + 0.5) / (self.count + 1) if smooth else self.q_count / self.count)[b]

    def __call__(self, scores: Tensor) -> Tensor:
        c = self.share(scores)
        tiny = 1e-12
        return torch.log(c + tiny) - torch.log(1 - c + tiny) + self.log_prior


def _bin_size(n_q: int, n: int) -> int:
    """25 expected samples of the smaller sample per bin, at least 50 (50 at N = M): a bin of one
    distribution then lacks the other's samples with probability below 2^-50 at N = M, below
    1e-11 at any imbalance."""
    return max(50, math.ceil(25 * n / max(1, min(n_q, n - n_q))))


def fit_bins(sq: Tensor, sp: Tensor, monotone: bool, bin_size: int | None = None) -> BinnedRatio:
    """Equal-count bins of the pooled scores of q (Nq,) and p (Np,), isotonic if ``monotone``."""
    scores = torch.cat([sq, sp]).double()
    is_q = torch.cat([torch.ones(len(sq)), torch.zeros(len(sp))]).double()
    size = _bin_size(len(sq), len(scores)) if bin_size is None else bin_size
    order = torch.argsort(scores)
    n_bins = max(1, len(scores) // size)
    bins = torch.arange(len(scores)) * n_bins // len(scores)  # (n,), bin of each rank
    count = torch.bincount(bins, minlength=n_bins).double()
    q_count = torch.bincount(bins, weights=is_q[order], minlength=n_bins)
    if monotone:
        q_count = count * _pool_adjacent_violators(q_count / count, count)
    starts = torch.cumsum(count, 0)[:-1].long()  # rank where each bin after the first begins
    edges = scores[order][starts]  # (B - 1,): the first score of each bin after the first
    return BinnedRatio(edges, q_count, count, math.log(len(sp) / len(sq)))


def _pool_adjacent_violators(value: Tensor, weight: Tensor) -> Tensor:
    """The non-decreasing sequence closest to ``value`` in weighted least squares."""
    blocks: list[list[float]] = []  # [value, weight, number of entries]
    for v, w in zip(value.tolist(), weight.tolist(), strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (v1, w1, k1), (v2, w2, k2) = blocks.pop(-2), blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, k1 + k2])
    return torch.tensor([v for v, _, k in blocks for _ in range(int(k))], dtype=torch.float64)


def binned_log_ratio(sq: Tensor, sp: Tensor, bin_size: int | None = None) -> tuple[Tensor, Tensor]:
    """log q/p of each sample's score bin, (Nq,), (Np,): any score, no monotonicity assumed."""
    ratio = fit_bins(sq, sp, monotone=False, bin_size=bin_size)
    return ratio(sq), ratio(sp)


def calibrated_log_ratio(
    logr_q: Tensor, logr_p: Tensor, bin_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """Out-of-fold logits mapped monotonically to the log-ratios they show in the data.

    A fitted model is smooth: where the true ratio jumps (the edge of a hole) its logit moves
    too little, and thresholding it at log eps misses part of the hole. The logits still *order*
    the samples well, and isotonic binning reads the ratio the order shows.
    """
    ratio = fit_bins(logr_q, logr_p, monotone=True, bin_size=bin_size)
    return ratio(logr_q), ratio(logr_p)


def _held_out_loss(sq: Tensor, sp: Tensor, monotone: bool, gen: torch.Generator) -> float:
    """Logistic loss of the calibration fitted on one half of each sample, scored on the other,
    and the reverse (the same halves for every score)."""
    half_q = torch.randperm(len(sq), generator=gen) % 2 == 0
    half_p = torch.randperm(len(sp), generator=gen) % 2 == 0
    total = 0.0
    for fit_q, fit_p in ((half_q, half_p), (~half_q, ~half_p)):
        ratio = fit_bins(sq[fit_q], sp[fit_p], monotone)
        c_q, c_p = ratio.share(sq[~fit_q], smooth=True), ratio.share(sp[~fit_p], smooth=True)
        total -= float(c_q.log().sum() + (1 - c_p).log().sum())
    return total / (len(sq) + len(sp))


def best_log_ratio(
    scores: list[tuple[Tensor, Tensor, bool]], seed: int = 0
) -> tuple[int, Tensor, Tensor]:
    """The calibrated log q/p of the score that tells q from p best.

    Args:
        scores: (score of q (Nq,), score of p (Np,), monotone) per candidate score.
        seed: Seeds the halves of the held-out comparison.

    Returns:
        The chosen score's index and its log-ratios at q and at p, (Nq,), (Np,).
    """
    losses = []
    for sq, sp, monotone in scores:
        losses.append(_held_out_loss(sq, sp, monotone, torch.Generator().manual_seed(seed)))
    best = min(range(len(scores)), key=losses.__getitem__)
    sq, sp, monotone = scores[best]
    ratio = fit_bins(sq, sp, monotone)
    return best, ratio(sq), ratio(sp)

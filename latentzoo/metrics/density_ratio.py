"""Density ratio q(z)/p(z) from samples alone: a cross-fitted probabilistic classifier.

Sugiyama, Suzuki & Kanamori 2012, "Density Ratio Estimation in Machine Learning", ch. 4: a
classifier c trained to tell samples of q (label 1) from as many samples of p (label 0) has, at
its optimum, logit log c/(1 - c) = log q(z)/p(z). Used by :mod:`latentzoo.metrics.holes` to find
where the aggregated posterior leaves the prior empty; the estimator and its calibration are
described there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["calibrated_log_ratio", "density_ratio_logits"]


def _classifier(d: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1)
    )


def _fit_logit(
    zq: Tensor, zp: Tensor, gen: torch.Generator, hidden: int, max_epochs: int
) -> nn.Module:
    """A classifier of q (label 1) against p (label 0) samples, early-stopped on a held-out 10%."""
    x = torch.cat([zq, zp]).float()  # (Nq + Np, d), standardized: float32 is plenty
    y = torch.cat([torch.ones(len(zq)), torch.zeros(len(zp))])
    perm = torch.randperm(len(x), generator=gen)
    n_val = max(2, len(x) // 10)
    val, train = perm[:n_val], perm[n_val:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31, (), generator=gen)))
        net = _classifier(x.shape[1], hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    best, best_state, patience = math.inf, None, 0
    for _ in range(max_epochs):
        net.train()
        for idx in train[torch.randperm(len(train), generator=gen)].split(256):
            opt.zero_grad()
            loss_fn(net(x[idx]).squeeze(1), y[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net(x[val]).squeeze(1), y[val]))
        if val_loss < best - 1e-4:
            best, patience = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            patience += 1
            if patience >= 3:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval()


def calibrated_log_ratio(
    logr_q: Tensor, logr_p: Tensor, bin_size: int = 200
) -> tuple[Tensor, Tensor]:
    """Out-of-fold log-ratio scores mapped monotonically to the log-ratios they show in the data.

    An early-stopped classifier is smooth: where the true ratio jumps (the edge of a hole) its
    logit moves too little, and thresholding it at log eps misses part of the hole. The scores
    still *order* the samples well, so they are recalibrated (Zadrozny & Elkan 2002): the pooled
    samples are sorted by score into bins of ``bin_size``, the share of q-samples per bin is made
    non-decreasing by pool-adjacent-violators, and each sample gets its bin's ratio. A bin of 200
    samples of one distribution has no q-sample with probability 2^-200, so calibration adds no
    spurious holes; where q is truly absent it reads 0.
    """
    scores = torch.cat([logr_q, logr_p])
    is_q = torch.cat([torch.ones(len(logr_q)), torch.zeros(len(logr_p))]).double()
    order = torch.argsort(scores)
    n_bins = max(1, len(scores) // bin_size)
    bins = torch.arange(len(scores)) * n_bins // len(scores)  # equal-count bins, in score order
    count = torch.bincount(bins, minlength=n_bins).double()
    share = torch.bincount(bins, weights=is_q[order], minlength=n_bins) / count
    blocks: list[list[float]] = []  # [share, weight, number of bins]
    for value, weight in zip(share.tolist(), count.tolist(), strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:  # pool adjacent violators
            (v1, w1, k1), (v2, w2, k2) = blocks.pop(-2), blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, k1 + k2])
    per_bin = torch.tensor([v for v, _, k in blocks for _ in range(int(k))], dtype=torch.float64)
    c = torch.empty_like(scores)
    c[order] = per_bin[bins]
    tiny = 1e-12
    logr = torch.log(c + tiny) - torch.log(1 - c + tiny) + math.log(len(logr_p) / len(logr_q))
    return logr[: len(logr_q)], logr[len(logr_q) :]


def density_ratio_logits(
    zq: Tensor,
    zp: Tensor,
    seed: int = 0,
    hidden: int = 128,
    max_epochs: int = 40,
    max_log_ratio: float = 20.0,
) -> tuple[Tensor, Tensor]:
    """Cross-fitted estimates of log q(z)/p(z) at every sample of q and of p.

    Args:
        zq: (Nq, d) samples of q; ``zp``: (Np, d) samples of p. Nq and Np should be about equal
            (the logit is corrected by log(Np/Nq) for the imbalance).
        seed: Seeds the folds, the initialisation and the batches (the result is a function of
            the inputs and the seed alone).
        hidden: Units per hidden layer of the classifier.
        max_epochs: Most passes over a fold (early stopping usually ends sooner).
        max_log_ratio: The estimates are clipped to +-this.

    Returns:
        (Nq,) and (Np,) float64 log-ratio estimates, each from a classifier that never saw it.
    """
    # validate/test run under inference mode, where nothing could be trained: leave it, and
    # copy the inputs out of it (inference tensors cannot take part in autograd).
    with torch.inference_mode(False), torch.enable_grad():
        zq, zp = zq.detach().double().cpu().clone(), zp.detach().double().cpu().clone()
        return _cross_fitted(zq, zp, seed, hidden, max_epochs, max_log_ratio)


def _cross_fitted(
    zq: Tensor, zp: Tensor, seed: int, hidden: int, max_epochs: int, max_log_ratio: float
) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    pooled = torch.cat([zq, zp])
    centre, scale = pooled.mean(0), pooled.std(0).clamp_min(1e-8)
    zq, zp = (zq - centre) / scale, (zp - centre) / scale
    fold_q = torch.randperm(len(zq), generator=gen) % 2
    fold_p = torch.randperm(len(zp), generator=gen) % 2
    out_q, out_p = (
        torch.empty(len(zq), dtype=torch.float64),
        torch.empty(len(zp), dtype=torch.float64),
    )
    for k in (0, 1):
        train_q, train_p = zq[fold_q != k], zp[fold_p != k]
        net = _fit_logit(train_q, train_p, gen, hidden, max_epochs)
        prior_shift = math.log(len(train_p) / len(train_q))  # logit = log q/p + log Nq/Np
        with torch.no_grad():
            out_q[fold_q == k] = net(zq[fold_q == k].float()).squeeze(1).double() + prior_shift
            out_p[fold_p == k] = net(zp[fold_p == k].float()).squeeze(1).double() + prior_shift
    return out_q.clamp(-max_log_ratio, max_log_ratio), out_p.clamp(-max_log_ratio, max_log_ratio)

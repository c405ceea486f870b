"""Density ratio q(z)/p(z) from samples alone: cross-fitted classifiers and calibrated scores.

Sugiyama, Suzuki & Kanamori 2012, "Density Ratio Estimation in Machine Learning", ch. 4: a
classifier c trained to tell samples of q (label 1) from as many samples of p (label 0) has, at
its optimum, logit log c/(1 - c) = log q(z)/p(z). *Cross-fitting* keeps every score out of
sample: the samples are split in two folds, a model fitted on one fold scores the other, and the
reverse. Two models, each fitted by maximum likelihood on z standardized over both samples:

- :func:`density_ratio_logits`: a small MLP (two hidden layers, SiLU), logistic loss, weight
  decay, early stopping on a held-out tenth. Any shape, but smooth: in 64 dimensions it blurs a
  hole's edge, or misses a hole bounded by a quadric (a ball) altogether.
- :func:`boundary_logits`: the ratio of a q that is p (times a constant) on one side of a quadric
  boundary and vanishes on the other, q/p = c sigma(v . phi(z) + b), phi(z) = (z, |z|^2). Its
  sharp step estimates the boundary at the fast rate of a hard classification problem, where
  the MLP's logistic fit sees a gentle ramp: a slab in 64 dimensions reads 0.12 of its mass 0.16
  this way, 0.06 with the MLP.

Their scores are read as ratios by :mod:`latentzoo.metrics.ratio_calibration`. Used by
:mod:`latentzoo.metrics.holes`, whose docstring holds the estimator's story and calibration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["boundary_logits", "density_ratio_logits", "single_threaded", "standardized"]

# Held-out logistic loss at which the MLP stops: q and p are told apart (a 99% sure logit at
# nearly every sample); more epochs only steepen the logits, which are clipped anyway.
SEPARATED = 0.01

Scorer = Callable[[Tensor], Tensor]  # (n, d) -> (n,) float64 scores
Fitter = Callable[[Tensor, Tensor, torch.Generator], Scorer]  # (q, p, generator) -> scorer


def standardized(zq: Tensor, zp: Tensor) -> tuple[Tensor, Tensor]:
    """Both samples centred and scaled per coordinate by the pooled mean and std (label-free)."""
    pooled = torch.cat([zq, zp])
    centre, scale = pooled.mean(0), pooled.std(0).clamp_min(1e-8)
    return (zq - centre) / scale, (zp - centre) / scale


def _fit_mlp(zq: Tensor, zp: Tensor, gen: torch.Generator, hidden: int, max_epochs: int) -> Scorer:
    """A classifier of q (label 1) against p (label 0) samples, early-stopped on a held-out 10%."""
    x = torch.cat([zq, zp]).float()  # (Nq + Np, d), standardized: float32 is plenty
    y = torch.cat([torch.ones(len(zq)), torch.zeros(len(zp))])
    perm = torch.randperm(len(x), generator=gen)
    n_val = max(2, len(x) // 10)
    val, train = perm[:n_val], perm[n_val:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31, (), generator=gen)))
        net = nn.Sequential(
            nn.Linear(x.shape[1], hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 1),
        )  # fmt: skip
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    best, best_state, patience = math.inf, None, 0
    for _ in range(max_epochs):
        net.train()
        for idx in train[torch.randperm(len(train), generator=gen)].split(256):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(net(x[idx]).squeeze(1), y[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(F.binary_cross_entropy_with_logits(net(x[val]).squeeze(1), y[val]))
        if val_loss < best - 1e-4:
            best, patience = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
            if val_loss < SEPARATED:
                break
        else:
            patience += 1
            if patience >= 3:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return lambda z: net(z.float()).squeeze(1).double()


def _quadric_features(z: Tensor) -> Tensor:
    """phi(z) = (z, (|z|^2 - d) / sqrt(2 d)), (n, d) -> (n, d + 1): balls are half-spaces."""
    d = z.shape[1]
    return torch.cat([z, ((z * z).sum(1, keepdim=True) - d) / math.sqrt(2 * d)], 1)


def _fit_boundary(zq: Tensor, zp: Tensor, gen: torch.Generator, l2: float = 1e-5) -> Scorer:
    """Maximum likelihood of P(q | z) = r / (1 + r), log r = log c + log sigma(v . phi + b).

    Started from the linear logistic fit (steepened four-fold, b = 2: most of the space on the
    q side); L-BFGS in float64. Returns v . phi + b, a score increasing with the modelled ratio.
    """
    del gen  # deterministic given the data
    x = _quadric_features(torch.cat([zq, zp]))  # (n, d + 1)
    y = torch.cat([torch.ones(len(zq)), torch.zeros(len(zp))]).double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b0 = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def linear() -> Tensor:
        return F.binary_cross_entropy_with_logits(x @ w + b0, y) + l2 * w.square().sum()

    _lbfgs([w, b0], linear)
    v = (4 * w.detach()).requires_grad_(True)
    b = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    log_c = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def step() -> Tensor:
        logit = log_c + F.logsigmoid(x @ v + b)  # log r
        return F.binary_cross_entropy_with_logits(logit, y) + l2 * v.square().sum()

    if not _lbfgs([v, b, log_c], step):  # a non-finite fit: keep the linear logistic score
        v, b = w, b0
    v, b = v.detach(), b.detach()
    return lambda z: _quadric_features(z.double()) @ v + b


def _lbfgs(params: list[Tensor], loss: Callable[[], Tensor], iters: int = 200) -> bool:
    """Minimize ``loss`` over ``params`` in place; False where it ended non-finite."""
    opt = torch.optim.LBFGS(params, max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        return bool(torch.isfinite(loss())) and all(bool(p.isfinite().all()) for p in params)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run on one CPU thread, then restore the count. The fits' small batches and matrices run
    no faster on more, and on a busy machine threads waiting for each other took the MLP from
    0.5 s to 21 s (two threads, N = M = 10,000, d = 64); one thread also makes the numbers
    independent of the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _cross_fitted(zq: Tensor, zp: Tensor, seed: int, fit: Fitter) -> tuple[Tensor, Tensor]:
    """Out-of-fold scores of every sample of q and p, (Nq,), (Np,) float64."""
    # validate/test run under inference mode, where nothing could be trained: leave it, and copy
    # the inputs out of it (inference tensors cannot take part in autograd).
    with torch.inference_mode(False), torch.enable_grad(), single_threaded():
        zq, zp = (z.detach().double().cpu().clone() for z in (zq, zp))
        zq, zp = standardized(zq, zp)
        gen = torch.Generator().manual_seed(seed)
        fold_q = torch.randperm(len(zq), generator=gen) % 2
        fold_p = torch.randperm(len(zp), generator=gen) % 2
        out_q = torch.empty(len(zq), dtype=torch.float64)
        out_p = torch.empty(len(zp), dtype=torch.float64)
        for k in (0, 1):
            score = fit(zq[fold_q != k], zp[fold_p != k], gen)
            with torch.no_grad():
                out_q[fold_q == k] = score(zq[fold_q == k])
                out_p[fold_p == k] = score(zp[fold_p == k])
    return out_q, out_p


def density_ratio_logits(
    zq: Tensor,
    zp: Tensor,
    seed: int = 0,
    hidden: int = 128,
    max_epochs: int = 40,
    max_log_ratio: float = 20.0,
) -> tuple[Tensor, Tensor]:
    """Cross-fitted MLP estimates of log q(z)/p(z) at every sample of q and of p.

    Args:
        zq: (Nq, d) samples of q; ``zp``: (Np, d) samples of p. The logit is corrected by
            log(Np/Nq) for the imbalance.
        seed: Seeds the folds, the initialisation and the batches (the result is a function of
            the inputs and the seed alone).
        hidden: Units per hidden layer of the classifier.
        max_epochs: Most passes over a fold (early stopping usually ends sooner).
        max_log_ratio: The estimates are clipped to +-this.

    Returns:
        (Nq,) and (Np,) float64 log-ratio estimates, each from a classifier that never saw it.
    """
    # Each fold's classifier sees Np/2 of p against Nq/2 of q: logit = log q/p + log Nq/Np.
    shift = math.log(len(zp) / len(zq))
    out_q, out_p = _cross_fitted(
        zq, zp, seed, lambda q, p, gen: _fit_mlp(q, p, gen, hidden, max_epochs)
    )
    return (out_q + shift).clamp(-max_log_ratio, max_log_ratio), (out_p + shift).clamp(
        -max_log_ratio, max_log_ratio
    )


def boundary_logits(zq: Tensor, zp: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Cross-fitted scores v . phi(z) + b of the quadric-boundary model, (Nq,), (Np,) float64.

    Monotone in the modelled q/p; read them as ratios with
    :func:`~latentzoo.metrics.ratio_calibration.calibrated_log_ratio`.
    """
    return _cross_fitted(zq, zp, seed, _fit_boundary)

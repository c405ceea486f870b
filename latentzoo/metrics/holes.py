"""Holes in the aggregated posterior: where the prior puts mass and the encoder does not.

The aggregated posterior over N training points (Hoffman & Johnson 2016; Tomczak, "Deep
Generative Modeling", sec. 4.4, whose figure shows a VAE's encodings leaving holes in its prior):

    q(z) = 1/N sum_n q(z | x_n).

A *hole* is a region where the prior p(z) puts mass and q(z) does not, H = {z : q(z)/p(z) < eps},
and the hole fraction is its prior mass p(H): the share of prior draws that decode from codes the
decoder never saw in training. ``eps`` = 0.1 by default: where q has less than a tenth of the
prior's density.

What was wrong. One classifier between samples of q and of p estimated q/p (Sugiyama et al.
2012; Rosca et al. 2018). Codes on an n-dimensional manifold in m > n dimensions have no density
off it, p(H) = 1; the classifier, early-stopped on 10,000 samples, cannot see a curved set whose
mean and covariance are the prior's and read 0 (4 in 16, 8 in 32, 16 in 64). In 64 dimensions it
read 0 for an empty ball and 0.06 for an empty slab of the prior, both of mass 0.16. Distances
from the prior draws do not save it: from a prior draw, codes on a 16-dimensional manifold in 64
dimensions are as far as full-dimensional codes.

The estimator (:func:`hole_stats`). Write q = (1 - pi) q_c + pi q_s, a part q_c with a density
and a part q_s on a lower-dimensional set (Lebesgue's decomposition). q_s has no density off
its set, so H = {z : (1 - pi) q_c(z)/p(z) < eps}, estimated in two parts:

1. *Dimension* (:mod:`~latentzoo.metrics.intrinsic_dim`): the codes' local dimensions (Levina &
   Bickel 2004, 50 neighbours among themselves) against those of as many prior draws among
   themselves. The share of the codes that can be full-dimensional like the prior's draws (a
   mixture-proportion bound, Blanchard et al. 2010) is 1 - pi, logged as ``low_dim_share`` = pi.
   This is where the dimension enters, on the codes' side, where it shows: codes on a manifold
   crowd each other.
2. *Density*: three cross-fitted scores of every sample (:mod:`~latentzoo.metrics.density_ratio`):
   the MLP classifier's logit (any shape, smooth), the quadric-boundary model's (slabs and balls
   anywhere, sharp) and the radius |z|^2 (shells: the prior's mass in d dimensions sits near
   radius sqrt(d), which a too-narrow, too-wide or gapped aggregate misses). Each is read as a
   ratio by binning, and the one that tells q from p best on held-out halves gives log q/p at
   the prior draws (:mod:`~latentzoo.metrics.ratio_calibration`).

A prior draw is in a hole when (1 - pi) times its ratio is below eps. Samples of q are the codes
(deterministic encoders) or one draw z_n ~ q(z|x_n) per point (stochastic ones), so a VAE's and a
WAE's numbers compare; the prior enters through its sampler only. KL(p||q) = E_p[-log r] and
KL(q||p) = E_q[log r] are the MLP's raw logits: they see densities only, so a singular aggregate
reads finite KLs. ``intrinsic_dim`` is the codes' Levina-Bickel estimate (20 neighbours, MacKay &
Ghahramani's average), ``intrinsic_dim_prior`` that of as many prior draws: what a full-
dimensional aggregate reads at this N (36 for N(0, I_64) at N = 10,000). Every number depends on
N and M: compare models at the same ones (the callback's defaults, 10,000 each).

Limits. The shape of q_c is the one the scores see in all of q: a singular part placed unlike the
rest is read where q is. A manifold folded more finely than the codes' spacing looks full-
dimensional: cos features of frequency 2 read 0.07 holes in 16 of 64 dimensions (low_dim_share
0.76, intrinsic_dim 24 of the prior's 36) and 0.19-0.99 in 8 of 32, where low_dim_share 0.91-0.94
leaves ratios near 1 at the threshold. Sharp empty regions and tight clusters (fewer codes per
cluster) raise low_dim_share too, up to 0.5, which scales the ratios near eps down.

Calibration (tests/metrics/test_holes.py; seeds 0-2; read, and the exact truth):

    aggregate = prior: posteriors of width 0.05-0.9, deterministic codes, d = 2-64      0 (0)
    flat and curved n-in-m manifolds, whitened, (n, m) = (2, 8) ... (16, 64)  0.98-1.00 (1)
    d = 64, N = 10,000: empty slab                                  0.129-0.139 (0.159)
                        empty rotated slab                          0.130-0.135 (0.159)
                        empty half space                            0.475-0.480 (0.500)
                        empty ball                                  0.175-0.179 (0.200)
                        empty shell                                 0.275-0.285 (0.300)
                        aggregate N(0, 0.9^2 I)                     0.124-0.162 (0.126)
    d = 16, N = 2,000:  empty slab, rotated slab                    0.123-0.125 (0.159)
                        empty off-centre ball                       0.172-0.174 (0.202)
                        empty shell                                 0.248-0.250 (0.300)
                        aggregate N(0, 1.3^2 I), wider              0.096-0.166 (0.099)
    ten clusters, N = 10,000: d = 2, read - truth -0.06 to -0.02; d = 16, +0.04 to +0.09
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from latentzoo.metrics.density_ratio import (
    boundary_logits,
    density_ratio_logits,
    single_threaded,
    standardized,
)
from latentzoo.metrics.intrinsic_dim import (
    full_dim_share,
    intrinsic_dim,
    knn_distances,
    local_inverse_dim,
)
from latentzoo.metrics.ratio_calibration import best_log_ratio

__all__ = [
    "AggregatedPosteriorHoles",
    "HoleStats",
    "PriorSampler",
    "active_offdiag_cov",
    "aggregate_samples",
    "dimension_stats",
    "hole_stats",
]

HoleStats = dict[str, Tensor]
PriorSampler = Callable[[int, torch.Generator], Tensor]  # (n, generator) -> (n, d) draws of p

NEIGHBOURS = 50  # k of the local-dimension comparison: more power than 20 on curved manifolds
ID_NEIGHBOURS = 20  # k of the reported intrinsic_dim (Levina & Bickel's 10-20)


def standard_normal_sampler(d: int) -> PriorSampler:
    """Draws of N(0, I_d) from the given generator, float64."""
    return lambda n, gen: torch.randn(n, d, generator=gen, dtype=torch.float64)


def aggregate_samples(mu: Tensor, logvar: Tensor | None, gen: torch.Generator) -> Tensor:
    """One draw z_n ~ q(z|x_n) per posterior (the codes themselves when logvar is None), (N, d).

    Together they are N independent samples of the aggregated posterior q(z).
    """
    z = mu.detach().double().cpu()
    if logvar is None:
        return z
    eps = torch.randn(z.shape, generator=gen, dtype=torch.float64)
    return z + eps * torch.exp(0.5 * logvar.detach().double().cpu())


def dimension_stats(z_q: Tensor, z_prior: Tensor) -> HoleStats:
    """The codes' and the prior's intrinsic dimensions and the codes' lower-dimensional share.

    Both from min(N, M) rows (the same count, so the estimator's bias is the same for both).
    ``low_dim_share`` is 1 - :func:`~latentzoo.metrics.intrinsic_dim.full_dim_share` of the
    local dimensions at k = 50.
    """
    n = min(len(z_q), len(z_prior))
    k = min(NEIGHBOURS, n - 1)
    dist_q, dist_p = knn_distances(z_q[:n], k), knn_distances(z_prior[:n], k)  # (n, k) each
    k_id = min(ID_NEIGHBOURS, k)
    return {
        "intrinsic_dim": intrinsic_dim(local_inverse_dim(dist_q[:, :k_id])),
        "intrinsic_dim_prior": intrinsic_dim(local_inverse_dim(dist_p[:, :k_id])),
        "low_dim_share": 1 - full_dim_share(local_inverse_dim(dist_q), local_inverse_dim(dist_p)),
    }


def _prior_log_ratios(z_q: Tensor, z_prior: Tensor, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The MLP's raw logits at q and p, and log q/p at each prior draw from the best-calibrated
    of three scores: the MLP's logits, the boundary model's scores and the radius |z|^2."""
    logr_q, logr_p = density_ratio_logits(z_q, z_prior, seed=seed)
    sq, sp = standardized(z_q, z_prior)
    candidates = [
        (logr_q, logr_p, True),
        (*boundary_logits(z_q, z_prior, seed=seed), True),
        (sq.square().sum(1), sp.square().sum(1), False),
    ]
    return logr_q, logr_p, best_log_ratio(candidates, seed=seed)[2]


def hole_stats(
    mu: Tensor,
    logvar: Tensor | None,
    num_prior: int = 10_000,
    num_reference: int = 10_000,
    seed: int = 0,
    *,
    epsilon: float = 0.1,
    prior_sample: PriorSampler | None = None,
) -> tuple[HoleStats, Tensor, Tensor]:
    """Hole fraction p(q/p < eps), the KLs, the dimensions and the active-dims covariance.

    Args:
        mu: (N, d) posterior means (the codes, for deterministic encoders).
        logvar: (N, d) posterior log-variances, or ``None`` for a deterministic encoder.
        num_prior: M, prior draws.
        num_reference: Most samples of q (a random subset of the N posteriors, one draw each).
        seed: Seeds every draw and the classifiers, so every rank and evaluation agree.
        epsilon: A prior draw is in a hole where the estimated q/p is below this.
        prior_sample: ``(n, generator) -> (n, d)`` draws of the model's prior; N(0, I) if None.

    Returns:
        The statistics (``holes``, ``kl_prior_agg``, ``kl_agg_prior``, ``intrinsic_dim``,
        ``intrinsic_dim_prior``, ``low_dim_share``, ``offdiag_cov``, ``num_active``), the prior
        draws (M, d) and their hole mask (M,), for the picture.
    """
    if mu.ndim != 2 or len(mu) < 4:
        raise ValueError(f"need (N, d) posterior means with N >= 4, got {tuple(mu.shape)}")
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    if num_prior < 4 or num_reference < 4:
        raise ValueError(
            f"num_prior and num_reference must be >= 4, got {num_prior}, {num_reference}"
        )
    gen = torch.Generator().manual_seed(seed)
    n, d = mu.shape
    sample = standard_normal_sampler(d) if prior_sample is None else prior_sample
    z_prior = sample(num_prior, gen).double().cpu()  # (M, d)
    if z_prior.shape != (num_prior, d):
        raise ValueError(f"prior_sample gave {tuple(z_prior.shape)}, need ({num_prior}, {d})")
    ref = torch.randperm(n, generator=gen)[: min(num_reference, n)].to(mu.device)
    z_q = aggregate_samples(mu[ref], None if logvar is None else logvar[ref], gen)  # (N', d)
    with single_threaded():  # 2.4 s at N = M = 10,000, d = 64; see single_threaded
        logr_q, logr_p, log_ratio = _prior_log_ratios(z_q, z_prior, seed)
        dims = dimension_stats(z_q, z_prior)
    log_full = torch.log((1 - dims["low_dim_share"]).clamp_min(1e-12))
    holes = log_full + log_ratio < math.log(epsilon)  # (M,)
    offdiag, n_active = active_offdiag_cov(mu)
    stats = {
        "holes": holes.double().mean(),
        "kl_prior_agg": (-logr_p).mean(),
        "kl_agg_prior": logr_q.mean(),
        **dims,
        "offdiag_cov": offdiag,
        "num_active": n_active,
    }
    return stats, z_prior, holes


def active_offdiag_cov(mu: Tensor, threshold: float = 0.01) -> tuple[Tensor, Tensor]:
    """Mean |off-diagonal covariance| of the codes over active dimensions, and their number.

    A dimension is active when Var_x(mu_j) > ``threshold`` (Burda et al. 2016's criterion). The
    mean absolute off-diagonal entry is the LMGAE paper's table 2 measure of how far the used
    latent dimensions are from independent; NaN with fewer than two active dimensions.
    """
    cov = torch.cov(mu.double().T).reshape(mu.shape[1], mu.shape[1])  # (d, d)
    active = torch.diagonal(cov) > threshold
    k = int(active.sum())
    if k < 2:
        return torch.tensor(math.nan, dtype=torch.float64), torch.tensor(k)
    sub = cov[active][:, active]  # (k, k)
    off = sub[~torch.eye(k, dtype=torch.bool, device=sub.device)]
    return off.abs().mean(), torch.tensor(k)


class AggregatedPosteriorHoles(Metric):
    """Collects posteriors (mu, logvar) over ranks and computes :func:`hole_stats` from all of them.

    Every rank computes the same numbers after the sync (the seed fixes every random draw and the
    classifiers' training), so the value does not depend on how the data were split over
    processes. The prior is part of the metric's configuration, like its sizes: pass the model's
    sampler to the constructor or to :meth:`set_prior` before :meth:`compute`.

    Args:
        num_prior: See :func:`hole_stats`.
        num_reference: See :func:`hole_stats`.
        seed: See :func:`hole_stats`.
        epsilon: See :func:`hole_stats`.
        prior_sample: See :func:`hole_stats`; N(0, I) if None.
    """

    full_state_update = False
    mu: list[Tensor]
    logvar: list[Tensor]

    def __init__(
        self,
        num_prior: int = 10_000,
        num_reference: int = 10_000,
        seed: int = 0,
        epsilon: float = 0.1,
        prior_sample: PriorSampler | None = None,
    ) -> None:
        super().__init__()
        self.num_prior, self.num_reference, self.seed = num_prior, num_reference, seed
        self.epsilon = epsilon
        self.prior_sample = prior_sample
        self.add_state("mu", [], dist_reduce_fx="cat")
        self.add_state("logvar", [], dist_reduce_fx="cat")
        self.last_prior: Tensor | None = None
        self.last_holes: Tensor | None = None

    def set_prior(self, prior_sample: PriorSampler | None) -> None:
        """Measure against this prior from now on (``(n, generator) -> (n, d)``; None: N(0, I)).

        A model's prior can change between evaluations (a learned prior trains with it), so a
        callback that owns the metric sets it before each :meth:`compute`.
        """
        self.prior_sample = prior_sample

    def update(self, mu: Tensor, logvar: Tensor | None) -> None:
        self.mu.append(mu.detach().double())
        if logvar is not None:
            self.logvar.append(logvar.detach().double())

    def compute(self) -> HoleStats:
        mu = dim_zero_cat(self.mu)  # (N, d)
        logvar = dim_zero_cat(self.logvar) if len(self.logvar) else None
        if logvar is not None and logvar.numel() == 0:
            logvar = None  # deterministic encoder: the empty tensor a DDP sync makes
        stats, self.last_prior, self.last_holes = hole_stats(
            mu,
            logvar,
            self.num_prior,
            self.num_reference,
            seed=self.seed,
            epsilon=self.epsilon,
            prior_sample=self.prior_sample,
        )
        return stats

"""Holes in the aggregated posterior: where the prior puts mass and the encoder does not.

The aggregated posterior over N training points (Hoffman & Johnson 2016; Tomczak, "Deep
Generative Modeling", sec. 4.4, whose figure shows a VAE's encodings leaving holes in its prior):

    q(z) = 1/N sum_n q(z | x_n).

A *hole* is a region where the prior p(z) puts mass and q(z) does not, H = {z : q(z)/p(z) < eps},
and the hole fraction is its prior mass p(H): the share of prior draws that decode from codes the
decoder never saw in training. ``eps`` = 0.1 by default: where q has less than a tenth of the
prior's density.

The estimator is a probabilistic classifier between samples of q and samples of p, read as a
density-ratio estimator (Sugiyama, Suzuki & Kanamori 2012, "Density Ratio Estimation in Machine
Learning", ch. 4; used to measure exactly this mismatch by Rosca, Lakshminarayanan & Mohamed 2018,
"Distribution Matching in Variational Inference"): with as many samples of each, the Bayes-optimal
classifier's logit is log q(z)/p(z). Why this and not a density of q:

- It needs *samples* of q only, so one estimator serves stochastic encoders (a draw
  z_n ~ q(z|x_n) per training point) and deterministic ones (the codes), and a VAE's and a WAE's
  numbers compare. Evaluating the mixture density 1/N sum_n q(z|x_n) instead reads 100% holes for
  any sharp VAE: a finite mixture of narrow Gaussians is a bed of nails whose density between the
  nails is tiny even when its samples are distributed exactly as the prior.
- It needs samples of the prior only (``prior_sample``), so learned priors come in through the
  model's own ``sample_prior``.
- It gives both KLs from the same logits: KL(p||q) = E_p[-log r], KL(q||p) = E_q[log r]. A true
  hole makes KL(p||q) infinite; the estimate is then bounded by ``max_log_ratio``.

The classifier is a small MLP on standardized codes (two hidden layers, SiLU), trained with the
logistic loss, weight decay and early stopping on a held-out tenth. *Cross-fitting* keeps every
reported number out of sample: the samples are split in two folds, a classifier trained on one
fold scores the other, and the reverse. On samples of one distribution it therefore outputs
logits near 0 (no spurious holes from overfitting). The hole fraction is the share of held-out
prior draws whose ratio is below eps after a monotone recalibration of the classifier's scores
(:func:`calibrated_log_ratio`: early stopping makes the logit too smooth at a hole's edge); the
KLs use the raw logits, whose mean is the better estimate of a smooth log-ratio.

Calibration (tests/metrics/test_holes.py, measured spreads there): aggregates equal to the prior
built from posteriors of widths 0.05 to 0.9 in 2 to 64 dimensions read < 1% holes; a prior region
of known mass left empty reads its mass within a few points; Gaussian aggregates give their
closed-form KL(q||p) and KL(p||q) within the stated tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from latentzoo.metrics.density_ratio import calibrated_log_ratio, density_ratio_logits

__all__ = [
    "AggregatedPosteriorHoles",
    "HoleStats",
    "PriorSampler",
    "active_offdiag_cov",
    "aggregate_samples",
    "hole_stats",
    "log_aggregate_posterior",
    "log_standard_normal",
    "silverman_logvar",
]

LOG_2PI = math.log(2 * math.pi)
HoleStats = dict[str, Tensor]
PriorSampler = Callable[[int, torch.Generator], Tensor]  # (n, generator) -> (n, d) draws of p


def log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, I) per row, (M, d) -> (M,)."""
    return -0.5 * (z.pow(2).sum(1) + z.shape[1] * LOG_2PI)


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


def hole_stats(
    mu: Tensor,
    logvar: Tensor | None,
    num_prior: int = 10_000,
    num_reference: int = 10_000,
    level: float | None = None,
    seed: int = 0,
    *,
    epsilon: float = 0.1,
    prior_sample: PriorSampler | None = None,
) -> tuple[HoleStats, Tensor, Tensor]:
    """Hole fraction p(q/p < eps), KL(p||q), KL(q||p) and the active-dims covariance.

    Args:
        mu: (N, d) posterior means (the codes, for deterministic encoders).
        logvar: (N, d) posterior log-variances, or ``None`` for a deterministic encoder.
        num_prior: M, prior draws; the classifier sees M of p against the samples of q.
        num_reference: Most samples of q (a random subset of the N posteriors, one draw each).
        level: Unused; the quantile threshold of latentzoo 0.1, accepted so old calls run.
        seed: Seeds every draw and the classifiers, so every rank and evaluation agree.
        epsilon: A prior draw is in a hole where the estimated q/p is below this.
        prior_sample: ``(n, generator) -> (n, d)`` draws of the model's prior; N(0, I) if None.

    Returns:
        The statistics, the prior draws (M, d) and their hole mask (M,), for the picture.
    """
    if mu.ndim != 2 or len(mu) < 4:
        raise ValueError(f"need (N, d) posterior means with N >= 4, got {tuple(mu.shape)}")
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    if num_prior < 4 or num_reference < 4:
        raise ValueError(
            f"num_prior and num_reference must be >= 4, got {num_prior}, {num_reference}"
        )
    del level  # the threshold is epsilon on the density ratio now
    gen = torch.Generator().manual_seed(seed)
    n, d = mu.shape
    sample = standard_normal_sampler(d) if prior_sample is None else prior_sample
    z_prior = sample(num_prior, gen).double().cpu()  # (M, d)
    ref = torch.randperm(n, generator=gen)[: min(num_reference, n)]
    z_q = aggregate_samples(
        mu[ref.to(mu.device)], None if logvar is None else logvar[ref.to(mu.device)], gen
    )
    logr_q, logr_p = density_ratio_logits(z_q, z_prior, seed=seed)
    holes = calibrated_log_ratio(logr_q, logr_p)[1] < math.log(epsilon)
    offdiag, n_active = active_offdiag_cov(mu)
    stats = {
        "holes": holes.double().mean(),
        "kl_prior_agg": (-logr_p).mean(),
        "kl_agg_prior": logr_q.mean(),
        "offdiag_cov": offdiag,
        "num_active": n_active,
    }
    return stats, z_prior, holes


def silverman_logvar(codes: Tensor) -> Tensor:
    """Per-dimension log h_j^2 of Silverman's rule for a Gaussian KDE of (N, d) codes, (d,).

    h_j = (4 / (N (d + 2)))^(1 / (d + 4)) * std_j (Silverman 1986, eq. 4.14).
    """
    n, d = codes.shape
    factor = (4.0 / (n * (d + 2))) ** (1.0 / (d + 4))
    std = codes.double().std(0).clamp_min(1e-12)
    return 2 * torch.log(factor * std)


def log_aggregate_posterior(
    z: Tensor,
    mu: Tensor,
    logvar: Tensor,
    exclude: Tensor | None = None,
    chunk_m: int = 1024,
    chunk_n: int = 8192,
) -> Tensor:
    """log q(z) = log 1/N' sum_n N(z; mu_n, diag(exp(logvar_n))) at each row of z, in float64.

    The exact mixture density of Gaussian posteriors (not used by :func:`hole_stats`; see the
    module docstring), computed in (chunk_m, chunk_n) blocks with a running log-sum-exp so that
    N = 60,000, M = 10,000, d = 64 needs a few MB.

    Args:
        z: (M, d) query points.
        mu: (N, d) posterior means.
        logvar: (N, d) posterior log-variances, or (d,) shared by all components.
        exclude: (M,) index of a component to leave out for each query (leave-one-out), then
            N' = N - 1; ``None`` keeps all, N' = N.
        chunk_m: Queries per block.
        chunk_n: Components per block.

    Returns:
        (M,) float64.
    """
    mu, z = mu.double(), z.double()
    logvar = logvar.double().expand_as(mu)
    n = len(mu)
    inv_var = torch.exp(-logvar)  # (N, d)
    # -1/2 sum_j (z_j - mu_j)^2 / v_j = -1/2 [z^2 . 1/v - 2 z . mu/v + mu^2 . 1/v]
    mu_iv = mu * inv_var  # (N, d)
    const = -0.5 * ((mu * mu_iv).sum(1) + logvar.sum(1) + mu.shape[1] * LOG_2PI)  # (N,)
    out = torch.empty(len(z), dtype=torch.float64, device=z.device)
    for m0 in range(0, len(z), chunk_m):
        zb = z[m0 : m0 + chunk_m]  # (m, d)
        running = torch.full((len(zb),), -math.inf, dtype=torch.float64, device=z.device)
        for n0 in range(0, n, chunk_n):
            sl = slice(n0, n0 + chunk_n)
            logp = zb @ mu_iv[sl].T - 0.5 * (zb * zb) @ inv_var[sl].T + const[sl]  # (m, n)
            if exclude is not None:
                cols = torch.arange(n0, n0 + logp.shape[1], device=z.device)
                own = exclude[m0 : m0 + chunk_m, None].to(z.device) == cols[None]
                logp = logp.masked_fill(own, -math.inf)
            running = torch.logaddexp(running, torch.logsumexp(logp, dim=1))
        out[m0 : m0 + chunk_m] = running
    return out - math.log(n - (exclude is not None))


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
    processes.

    Args:
        num_prior: See :func:`hole_stats`.
        num_reference: See :func:`hole_stats`.
        level: Unused (see :func:`hole_stats`).
        seed: See :func:`hole_stats`.
        epsilon: See :func:`hole_stats`.
    """

    full_state_update = False
    mu: list[Tensor]
    logvar: list[Tensor]

    def __init__(
        self,
        num_prior: int = 10_000,
        num_reference: int = 10_000,
        level: float | None = None,
        seed: int = 0,
        epsilon: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_prior, self.num_reference, self.seed = num_prior, num_reference, seed
        self.epsilon = epsilon
        self.prior_sample: PriorSampler | None = None  # set by the caller: the model's prior
        self.add_state("mu", [], dist_reduce_fx="cat")
        self.add_state("logvar", [], dist_reduce_fx="cat")
        self.last_prior: Tensor | None = None
        self.last_holes: Tensor | None = None

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

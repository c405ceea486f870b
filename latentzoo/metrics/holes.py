"""Holes in the aggregated posterior: where the prior puts mass and the encoder does not.

The aggregated posterior over N training points (Hoffman & Johnson 2016; Tomczak, "Deep
Generative Modeling", sec. 4.4, whose figure shows a VAE's encodings leaving holes in N(0, I)):

    q(z) = 1/N sum_n q(z | x_n),    q(z | x_n) = N(z; mu_n, diag(sigma_n^2)).

A deterministic encoder gives points, not Gaussians; q is then a Gaussian kernel density estimate
with per-dimension width by Silverman's rule, h_j = (4 / (N (d + 2)))^(1 / (d + 4)) * std_j
(Silverman 1986, eq. 4.14), the rule-of-thumb optimum for Gaussian-shaped data.

log q at M points is a log-sum-exp over N components, computed in (M_chunk, N_chunk) blocks with a
running maximum, so N = 60,000, M = 10,000, d = 64 needs a few MB, not M x N x 8 bytes.

A prior sample z ~ p(z) is *in a hole* when log q(z) is below the ``level`` quantile (1% by
default) of log q at samples of q itself: for Gaussian posteriors, draws z_n ~ q(z|x_n) scored
under the whole mixture (q(z|x_n) is part of q, so a draw is a sample of q); for a KDE, the codes
scored leave-one-out (their own kernel removed, so a point is not propped up by the kernel that
the estimate put on it). Leaving a Gaussian posterior's own component out instead would score a
sharp posterior's draw against the other, far-away components only, and set the threshold so low
that no prior sample is ever in a hole. When the encodings are themselves
prior samples the fraction is ``level``; mass the encoder never reaches raises it. The same
samples give Monte-Carlo estimates of KL(p || q) (which holes inflate) and KL(q || p).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = [
    "AggregatedPosteriorHoles",
    "HoleStats",
    "active_offdiag_cov",
    "hole_stats",
    "log_aggregate_posterior",
    "log_standard_normal",
    "silverman_logvar",
]

LOG_2PI = math.log(2 * math.pi)
HoleStats = dict[str, Tensor]


def log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, I) per row, (M, d) -> (M,)."""
    return -0.5 * (z.pow(2).sum(1) + z.shape[1] * LOG_2PI)


def silverman_logvar(codes: Tensor) -> Tensor:
    """Per-dimension log h_j^2 of Silverman's rule for a Gaussian KDE of (N, d) codes, (d,)."""
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

    Args:
        z: (M, d) query points.
        mu: (N, d) posterior means.
        logvar: (N, d) posterior log-variances, or (d,) shared by all components.
        exclude: (M,) index of a component to leave out for each query (leave-one-out), then
            N' = N - 1; ``None`` keeps all, N' = N.
        chunk_m: Queries per block.
        chunk_n: Components per block; memory is O(chunk_m * chunk_n).

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


def hole_stats(
    mu: Tensor,
    logvar: Tensor | None,
    num_prior: int = 10_000,
    num_reference: int = 10_000,
    level: float = 0.01,
    seed: int = 0,
) -> tuple[HoleStats, Tensor, Tensor]:
    """Hole fraction, KL(p||q), KL(q||p) and the active-dims covariance, from (N, d) posteriors.

    Args:
        mu: (N, d) posterior means (the codes, for deterministic encoders).
        logvar: (N, d) posterior log-variances, or ``None`` for a KDE with Silverman's width.
        num_prior: M, prior samples z ~ N(0, I).
        num_reference: Samples of q that set the threshold and estimate KL(q||p) (a random
            subset when N is larger; each is scored against all N). For Gaussian posteriors
            each is a draw z_n ~ q(z|x_n); for a KDE, the code itself, scored leave-one-out.
        level: Quantile of log q at samples of q below which a prior sample is in a hole.
        seed: Seeds the prior samples, the subset and the draws z_n ~ q(z|x_n), so every rank
            and every evaluation use the same ones.

    Returns:
        The statistics, the prior samples (M, d) and their hole mask (M,), for the picture.
    """
    if mu.ndim != 2 or len(mu) < 2:
        raise ValueError(f"need (N, d) posterior means with N >= 2, got {tuple(mu.shape)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    gen = torch.Generator().manual_seed(seed)
    n, d = mu.shape
    lv = silverman_logvar(mu) if logvar is None else logvar
    z_prior = torch.randn(num_prior, d, generator=gen, dtype=torch.float64).to(mu.device)
    ref = torch.randperm(n, generator=gen)[: min(num_reference, n)].to(mu.device)
    z_ref = mu[ref].double()  # (R, d) the codes themselves, for a KDE
    if logvar is not None:  # z_n ~ q(z | x_n)
        eps = torch.randn(len(ref), d, generator=gen, dtype=torch.float64).to(mu.device)
        z_ref = z_ref + eps * torch.exp(0.5 * logvar[ref].double())
    logq_prior = log_aggregate_posterior(z_prior, mu, lv)  # (M,)
    loo = ref if logvar is None else None  # leave-one-out for the KDE only (module docstring)
    logq_ref = log_aggregate_posterior(z_ref, mu, lv, exclude=loo)  # (R,)
    threshold = torch.quantile(logq_ref, level)
    holes = logq_prior < threshold
    offdiag, n_active = active_offdiag_cov(mu)
    stats = {
        "holes": holes.double().mean(),
        "kl_prior_agg": (log_standard_normal(z_prior) - logq_prior).mean(),
        "kl_agg_prior": (logq_ref - log_standard_normal(z_ref)).mean(),
        "offdiag_cov": offdiag,
        "num_active": n_active,
    }
    return stats, z_prior, holes


class AggregatedPosteriorHoles(Metric):
    """Collects posteriors (mu, logvar) over ranks and computes :func:`hole_stats` from all of them.

    Every rank computes the same numbers after the sync (the seed fixes every random draw), so
    the value does not depend on how the data were split over processes.

    Args:
        num_prior: See :func:`hole_stats`.
        num_reference: See :func:`hole_stats`.
        level: See :func:`hole_stats`.
        seed: See :func:`hole_stats`.
    """

    full_state_update = False
    mu: list[Tensor]
    logvar: list[Tensor]

    def __init__(
        self,
        num_prior: int = 10_000,
        num_reference: int = 10_000,
        level: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_prior, self.num_reference, self.level, self.seed = (
            num_prior,
            num_reference,
            level,
            seed,
        )
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
            mu, logvar, self.num_prior, self.num_reference, self.level, self.seed
        )
        return stats

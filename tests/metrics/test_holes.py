"""Hole fractions, KLs and dimensions of the holes metric in cases whose true answer is known.

Every tolerance is the estimator's measured spread over seeds 0-2 (data and estimator) at the
test's sample sizes, widened a little; the comments give the measured readings (summarised in
the metric's module docstring). N = M = 10,000, the callback's default, wherever the answer
depends on it (the 16-in-64 manifolds, the 64-dimensional regions, the KLs); 2,000 where the
point is made as well (a null case reads 0 holes at both).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from scipy.stats import chi2, ncx2, norm

from latentzoo.metrics.holes import active_offdiag_cov, hole_stats

Region = Callable[[torch.Tensor], torch.Tensor]  # (n, d) -> (n,) bool: inside the empty region


def gaussian_posteriors(
    n: int, d: int, s: float, mean: float = 0.0, sd: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posteriors N(mu_n, s^2 I) whose aggregate is exactly N(mean, sd^2 I)."""
    gen = torch.Generator().manual_seed(seed)
    mu = mean + torch.randn(n, d, generator=gen, dtype=torch.float64) * math.sqrt(sd**2 - s**2)
    return mu, torch.full((n, d), 2 * math.log(s), dtype=torch.float64)


def whiten(x: torch.Tensor) -> torch.Tensor:
    """x with mean 0 and covariance I on the span of its covariance (the prior's moments)."""
    x = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(torch.cov(x.T))
    keep = evals > 1e-9 * evals.max()
    return x @ (evecs[:, keep] / evals[keep].sqrt()) @ evecs[:, keep].T


def manifold_codes(num: int, n: int, m: int, curved: bool, seed: int = 0) -> torch.Tensor:
    """Deterministic codes of N(0, I_n) mapped into m dimensions, whitened.

    Flat: a random linear map (an n-dimensional subspace). Curved: a random tanh MLP n -> 4m -> m
    (gain 1.5), whose whitened image is curved at every scale the estimator sees.
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(num, n, generator=gen, dtype=torch.float64)
    if not curved:
        return whiten(u @ torch.randn(n, m, generator=gen, dtype=torch.float64))
    w1 = torch.randn(n, 4 * m, generator=gen, dtype=torch.float64) * 1.5 / math.sqrt(n)
    b1 = torch.randn(4 * m, generator=gen, dtype=torch.float64) * 0.5
    w2 = torch.randn(4 * m, m, generator=gen, dtype=torch.float64) / math.sqrt(4 * m)
    return whiten(torch.tanh(u @ w1 + b1) @ w2)


def prior_without(region: Region, num: int, d: int, seed: int = 0) -> torch.Tensor:
    """num draws of N(0, I_d) outside ``region``: the prior with the region's mass left empty."""
    gen, parts, have = torch.Generator().manual_seed(seed), [], 0
    while have < num:
        z = torch.randn(2 * num, d, generator=gen, dtype=torch.float64)
        parts.append(z[~region(z)])
        have += len(parts[-1])
    return torch.cat(parts)[:num]


def region(kind: str, d: int) -> tuple[Region, float]:
    """An empty region of the prior N(0, I_d) and its exact prior mass."""
    u = torch.randn(d, generator=torch.Generator().manual_seed(100), dtype=torch.float64)
    u = u / u.norm()  # a random direction
    if kind == "slab":  # z_1 < -1
        return (lambda z: z[:, 0] < -1), float(norm.cdf(-1))
    if kind == "half":  # z_1 < 0
        return (lambda z: z[:, 0] < 0), 0.5
    if kind == "rotated slab":  # u.z < -1
        return (lambda z: z @ u < -1), float(norm.cdf(-1))
    if kind == "ball":  # |z|^2 < chi2_d quantile 0.2
        r2 = float(chi2.ppf(0.2, d))
        return (lambda z: z.square().sum(1) < r2), 0.2
    if kind == "shell":  # |z|^2 between the chi2_d quantiles 0.4 and 0.7
        lo, hi = float(chi2.ppf(0.4, d)), float(chi2.ppf(0.7, d))
        return (lambda z: (z.square().sum(1) >= lo) & (z.square().sum(1) < hi)), 0.3
    if kind == "off-centre ball":  # |z - 1.5 u|^2 < 0.8 d: non-central chi2
        return (lambda z: (z - 1.5 * u).square().sum(1) < 0.8 * d), float(
            ncx2.cdf(0.8 * d, d, 2.25)
        )
    raise ValueError(kind)


def holes(mu: torch.Tensor, logvar: torch.Tensor | None, n: int, seed: int = 0) -> float:
    return float(hole_stats(mu, logvar, num_prior=n, num_reference=n, seed=seed)[0]["holes"])


def stats_of(mu: torch.Tensor, logvar: torch.Tensor | None, n: int, seed: int = 0) -> dict:
    return {
        k: float(v)
        for k, v in hole_stats(mu, logvar, num_prior=n, num_reference=n, seed=seed)[0].items()
    }


def normal(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- aggregates equal to the prior: no holes ---------------------------------------------------
# Measured (seeds 0-2, N = 2,000): holes 0.000 in every case; low_dim_share 0.00-0.23; |KL|
# <= 0.092 (d = 2, s = 0.9); the codes' and the prior's intrinsic dimensions within 2.5%.
LOWMAX, KLMAX = 0.3, 0.12


@pytest.mark.parametrize("d", [2, 16, 64])
@pytest.mark.parametrize("s", [0.05, 0.3, 0.9])
def test_an_aggregate_equal_to_the_prior_has_no_holes_whatever_the_posterior_width(
    s: float, d: int
) -> None:
    """Posteriors N(mu_n, s^2 I) whose aggregate is N(0, I). The mixture-density estimator once
    used read 0.99 holes at s = 0.3 here, 1.00 at s = 0.1."""
    stats = stats_of(*gaussian_posteriors(2000, d, s), 2000)
    assert stats["holes"] < 0.005
    assert stats["low_dim_share"] < LOWMAX
    assert abs(stats["kl_agg_prior"]) < KLMAX and abs(stats["kl_prior_agg"]) < KLMAX


@pytest.mark.parametrize(("d", "n"), [(2, 2000), (8, 2000), (32, 2000), (64, 2000), (64, 10_000)])
def test_deterministic_codes_drawn_like_the_prior_have_no_holes(d: int, n: int) -> None:
    stats = stats_of(normal(n, d, seed=50), None, n)
    assert stats["holes"] < 0.005
    assert stats["low_dim_share"] < LOWMAX
    assert stats["intrinsic_dim"] == pytest.approx(stats["intrinsic_dim_prior"], rel=0.04)


# -- codes on an n-dimensional manifold in m > n dimensions: the whole prior is a hole ---------
# Measured (seeds 0-2): holes 1.000 flat; curved 0.998-1.000 up to (6, 24), 0.984-1.000 for
# (8, 32), 0.982-0.996 for (16, 64) (which reads 0.31-0.68 at N = 2,000: too few codes to see its
# dimension); low_dim_share >= 0.97; intrinsic_dim <= 0.62 of the prior's.


@pytest.mark.parametrize("curved", [False, True], ids=["flat", "curved"])
@pytest.mark.parametrize(
    ("n", "m", "num"), [(2, 8, 2000), (4, 16, 2000), (6, 24, 2000), (8, 32, 2000), (16, 64, 10_000)]
)
def test_codes_on_a_lower_dimensional_manifold_leave_the_whole_prior_in_holes(
    n: int, m: int, num: int, curved: bool
) -> None:
    stats = stats_of(manifold_codes(num, n, m, curved), None, num)
    assert stats["holes"] > 0.95
    assert stats["low_dim_share"] > 0.9
    assert stats["intrinsic_dim"] < 0.75 * stats["intrinsic_dim_prior"]


# -- a region of known prior mass left empty reads as that mass ----------------------------------
# The true masses are exact (normal CDF, chi2, non-central chi2). The estimator reads low by up to
# a fifth of a flat boundary's mass (the boundary model's direction is estimated from the data).


@pytest.mark.parametrize(
    ("kind", "d", "n", "low", "high"),
    [
        ("slab", 2, 2000, 0.06, 0.02),  # measured 0.125-0.150 of 0.159
        ("slab", 16, 2000, 0.06, 0.02),  # 0.123-0.124
        ("slab", 64, 10_000, 0.05, 0.02),  # 0.129-0.139: the classifier alone read 0.058-0.079 here
        ("half", 64, 10_000, 0.05, 0.02),  # 0.475-0.480 of 0.500
        ("rotated slab", 16, 2000, 0.06, 0.02),  # 0.124-0.125 of 0.159
        ("rotated slab", 64, 10_000, 0.05, 0.02),  # 0.130-0.135
        ("ball", 2, 2000, 0.04, 0.03),  # 0.175-0.200 of 0.200
        ("ball", 8, 2000, 0.04, 0.03),  # 0.173-0.200
        ("ball", 64, 10_000, 0.04, 0.02),  # 0.175-0.179: the classifier alone read 0.000
        ("off-centre ball", 16, 2000, 0.05, 0.03),  # 0.172-0.174 of 0.202
        ("shell", 2, 2000, 0.10, 0.03),  # 0.225-0.298 of 0.300
        ("shell", 16, 2000, 0.08, 0.03),  # 0.248-0.250: the classifier alone, 0.000 at 10,000
        ("shell", 64, 10_000, 0.05, 0.03),  # 0.275-0.285: the classifier alone read 0.000
    ],
)
def test_a_prior_region_of_known_mass_left_empty_reads_as_that_mass(
    kind: str, d: int, n: int, low: float, high: float
) -> None:
    inside, truth = region(kind, d)
    got = holes(prior_without(inside, n, d), None, n)
    assert truth - low < got < truth + high, (got, truth)


@pytest.mark.parametrize(
    ("s", "d", "n", "tol"),
    [
        (0.5, 2, 2000, 0.07),  # measured 0.246-0.291 of 0.292
        (0.7, 16, 2000, 0.06),  # 0.464-0.536 of 0.496
        (1.3, 16, 2000, 0.08),  # 0.096-0.166 of 0.099: wider than the prior, holes in the centre
        (0.9, 64, 10_000, 0.05),  # 0.124-0.162 of 0.126
    ],
)
def test_a_gaussian_aggregate_narrower_or_wider_than_the_prior(
    s: float, d: int, n: int, tol: float
) -> None:
    """q = N(0, s^2 I) against p = N(0, I): q/p < eps where |z|^2 passes
    t = 2 (-d log s - log eps) / (1/s^2 - 1), so the holes' mass is a chi2_d tail at t."""
    t = 2 * (-d * math.log(s) - math.log(0.1)) / (1 / s**2 - 1)
    truth = float(chi2.sf(t, d) if s < 1 else chi2.cdf(t, d))
    got = holes(s * normal(n, d, seed=7), None, n)
    assert got == pytest.approx(truth, abs=tol)


def test_narrow_posteriors_pushed_out_of_half_the_prior_leave_half_in_holes() -> None:
    """Stochastic codes: means of the prior without z_1 < 0, posteriors of width 0.05 (which
    reach a little way into the empty half)."""
    mu = prior_without(region("half", 8)[0], 2000, 8)
    got = holes(mu, torch.full_like(mu, 2 * math.log(0.05)), 2000)
    assert 0.44 < got < 0.52  # measured 0.472-0.474 of (a little under) 0.5


@pytest.mark.parametrize(
    ("d", "k", "mean", "sd", "rel", "hole_tol"),
    [
        # measured KL(q||p) 0.234-0.271 of 0.250, KL(p||q) 0.198-0.248; holes 0.005-0.009 of 0.002
        (2, 2, 0.5, 1.0, 0.2, 0.015),
        (16, 4, 0.0, 0.5, 0.2, 0.06),  # 1.19-1.37 of 1.27; 2.68-2.90 of 3.23; 0.533-0.543 of 0.496
        (16, 4, 1.0, 0.7, 0.2, 0.05),  # 2.38-2.48 of 2.41; 4.66-5.10 of 4.74; 0.692-0.715 of 0.683
        # a quarter low at d = 64: 0.49-0.58 of 0.67; 0.75-0.77 of 1.01; 0.121-0.196 of 0.209
        (64, 4, 0.5, 0.8, 0.3, 0.10),
    ],
)
def test_gaussian_aggregates_give_their_closed_form_kls_and_hole_mass(
    d: int, k: int, mean: float, sd: float, rel: float, hole_tol: float
) -> None:
    """q = N(m, sd^2) in k of d dimensions, N(0, 1) in the rest, against p = N(0, I): smooth
    ratios. The KLs in closed form; the holes' mass by Monte Carlo on the exact log q/p."""
    mu, logvar = gaussian_posteriors(10_000, d, 0.1)  # aggregate N(0, I)...
    gen = torch.Generator().manual_seed(5)
    shifted = mean + torch.randn(10_000, k, generator=gen, dtype=torch.float64) * math.sqrt(
        sd**2 - 0.01
    )
    mu[:, :k] = shifted  # ...but N(mean, sd^2) in the first k dimensions
    kl_qp = 0.5 * k * (sd**2 + mean**2 - 1 - math.log(sd**2))
    kl_pq = 0.5 * k * (1 / sd**2 + mean**2 / sd**2 - 1 + math.log(sd**2))
    z = normal(1_000_000, k, seed=11)  # prior draws; only the first k coordinates matter
    log_ratio = (-math.log(sd) - (z - mean).square() / (2 * sd**2) + z.square() / 2).sum(1)
    stats = stats_of(mu, logvar, 10_000)
    assert stats["kl_agg_prior"] == pytest.approx(kl_qp, rel=rel, abs=0.05)
    assert stats["kl_prior_agg"] == pytest.approx(kl_pq, rel=rel, abs=0.05)
    truth = float((log_ratio < math.log(0.1)).double().mean())
    assert stats["holes"] == pytest.approx(truth, abs=hole_tol)


def test_codes_in_a_corner_leave_most_of_the_prior_in_holes() -> None:
    codes = 0.1 * torch.randn(2000, 2, generator=torch.Generator().manual_seed(2)) + 2.5
    stats, prior, mask = hole_stats(codes, None, num_prior=2000, num_reference=2000)
    assert float(stats["holes"]) > 0.9
    assert mask.shape == (2000,) and prior.shape == (2000, 2)
    assert float(stats["holes"]) == pytest.approx(float(mask.double().mean()))
    assert float(stats["kl_prior_agg"]) > 5  # holes inflate KL(p || q)


def test_the_model_prior_comes_in_through_its_sampler() -> None:
    """Codes that fill a wide prior N(0, 4 I) have no holes against it, but do against N(0, I)."""
    codes = 2 * normal(2000, 4, seed=6)

    def wide(n: int, gen: torch.Generator) -> torch.Tensor:
        return 2 * torch.randn(n, 4, generator=gen, dtype=torch.float64)

    assert holes_with(codes, wide) < 0.005
    narrow = stats_of(codes, None, 2000)
    assert narrow["kl_agg_prior"] > 1  # KL(N(0,4I) || N(0,I)) = 2 (4 - 1 - log 4) = 3.2


def holes_with(codes: torch.Tensor, prior: Callable) -> float:
    n = len(codes)
    return float(hole_stats(codes, None, n, n, prior_sample=prior)[0]["holes"])


def test_a_prior_sampler_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="prior_sample gave"):
        holes_with(normal(100, 3), lambda n, gen: torch.randn(n, 4, generator=gen))


def test_active_covariance() -> None:
    codes = normal(1000, 4, seed=3) * torch.tensor([1.0, 2.0, 0.01, 1.0], dtype=torch.float64)
    codes[:, 3] = codes[:, 0]  # perfectly correlated with dim 0
    offdiag, k = active_offdiag_cov(codes)
    assert int(k) == 3  # dim 2 has variance 1e-4 < 0.01: inactive
    cov = torch.cov(codes[:, [0, 1, 3]].T)
    assert float(offdiag) == pytest.approx(float((cov.abs().sum() - cov.diag().sum()) / 6))


def clustered(
    num: int, d: int, k: int, width: float, spread: float, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """num codes of a mixture of k Gaussians N(m_j, width^2 I), m_j ~ N(0, spread^2 I), and the
    prior mass where its exact density is below eps times the prior's (Monte Carlo, 200,000)."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=gen, dtype=torch.float64) * spread
    which = torch.randint(k, (num,), generator=gen)
    codes = means[which] + width * torch.randn(num, d, generator=gen, dtype=torch.float64)
    z = torch.randn(200_000, d, generator=gen, dtype=torch.float64)
    log_q = torch.logsumexp(-0.5 * (z[:, None] - means[None]).square().sum(2) / width**2, 1)
    log_ratio = log_q - math.log(k) - d * math.log(width) + 0.5 * z.square().sum(1)
    return codes, float((log_ratio < math.log(0.1)).double().mean())


@pytest.mark.parametrize(
    ("d", "width", "spread", "low", "high"),
    [
        # seeds 0-2: read 0.254, 0.279, 0.211 of 0.276, 0.336, 0.228 (low by 0.02-0.06)
        (2, 0.3, 1.0, 0.08, 0.03),
        # 0.375, 0.421, 0.338 of 0.285, 0.362, 0.295 (high by 0.04-0.09; low_dim_share 0.45-0.52)
        (16, 0.8, 0.6, 0.03, 0.12),
    ],
)
def test_a_clustered_aggregate_reads_the_mass_between_and_around_its_clusters(
    d: int, width: float, spread: float, low: float, high: float
) -> None:
    """Ten clusters, as a VAE's codes of ten classes: holes between and around them. In 16
    dimensions the clusters' few codes each read lower-dimensional than the prior's draws, which
    scales their ratios down near eps: the holes read high."""
    codes, truth = clustered(10_000, d, 10, width, spread)
    got = holes(codes, None, 10_000)
    assert truth - low < got < truth + high, (got, truth)

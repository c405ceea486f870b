"""Chunked aggregated-posterior density against brute force; hole fractions in known cases."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch

from latentzoo.metrics.holes import (
    active_offdiag_cov,
    hole_stats,
    log_aggregate_posterior,
    silverman_logvar,
)


def brute_force(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, loo: bool) -> torch.Tensor:
    """log 1/N sum_n N(z_m; mu_n, diag exp(logvar_n)), one (m, n) pair at a time."""
    out = []
    for m in range(len(z)):
        terms = []
        for n in range(len(mu)):
            if loo and n == m:
                continue
            var = logvar[n].exp()
            logp = -0.5 * (((z[m] - mu[n]) ** 2 / var) + logvar[n] + math.log(2 * math.pi)).sum()
            terms.append(logp)
        out.append(torch.logsumexp(torch.stack(terms), 0) - math.log(len(terms)))
    return torch.stack(out)


@pytest.mark.parametrize("loo", [False, True])
def test_chunked_log_q_matches_brute_force(loo: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(23, 3, generator=gen, dtype=torch.float64)
    logvar = torch.randn(23, 3, generator=gen, dtype=torch.float64) * 0.5 - 1
    z = mu.clone() if loo else torch.randn(17, 3, generator=gen, dtype=torch.float64) * 2
    exclude = torch.arange(len(z)) if loo else None
    # chunks smaller than both sizes, so every block boundary is crossed
    got = log_aggregate_posterior(z, mu, logvar, exclude=exclude, chunk_m=5, chunk_n=4)
    torch.testing.assert_close(got, brute_force(z, mu, logvar, loo))


# -- calibration: cases whose true answer is known --------------------------------------------
# Every tolerance below is the estimator's measured spread over seeds 0-2 (data and estimator) at
# these sample sizes (N = M = 10,000), rounded up; the comments give the measured values. The
# estimator reads low in high dimensions (a smooth classifier blurs a hole's edge): 8-10 points of
# prior mass at d = 64, a quarter of the KL; tolerances say so rather than hide it.


def gaussian_posteriors(
    n: int, d: int, s: float, mean: float = 0.0, sd: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posteriors N(mu_n, s^2 I) whose aggregate is exactly N(mean, sd^2 I)."""
    gen = torch.Generator().manual_seed(seed)
    mu = mean + torch.randn(n, d, generator=gen, dtype=torch.float64) * math.sqrt(sd**2 - s**2)
    return mu, torch.full((n, d), 2 * math.log(s), dtype=torch.float64)


def truncated_prior(n: int, d: int, a: float, seed: int = 0) -> torch.Tensor:
    """n draws of N(0, I_d) conditioned on z_1 > a: the prior with mass Phi(a) left empty."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(int(n / (1 - NormalDist().cdf(a))) + 4 * n, d, generator=gen)
    return z[z[:, 0] > a][:n]


@pytest.mark.parametrize("d", [2, 16, 64])
@pytest.mark.parametrize("s", [0.05, 0.3, 0.9])
def test_an_aggregate_equal_to_the_prior_has_no_holes_whatever_the_posterior_width(
    s: float, d: int
) -> None:
    """The case the mixture-density estimator got wrong: 0.99 holes at s = 0.3, 1.00 at s = 0.1."""
    stats, _, _ = hole_stats(*gaussian_posteriors(10_000, d, s))
    assert float(stats["holes"]) < 0.005  # measured 0 in every case
    assert abs(float(stats["kl_agg_prior"])) < 0.06  # measured |KL| <= 0.046
    assert abs(float(stats["kl_prior_agg"])) < 0.06


@pytest.mark.parametrize(
    ("d", "a", "low", "high"),
    [
        (2, 0.0, 0.02, 0.02),  # measured 0.499-0.500 of 0.500
        (2, -1.0, 0.02, 0.02),  # 0.159-0.160 of 0.159
        (16, 0.0, 0.07, 0.02),  # 0.458-0.460
        (16, -1.0, 0.08, 0.02),  # 0.099-0.119
        (64, 0.0, 0.13, 0.02),  # 0.399-0.418
        (64, -1.0, 0.13, 0.02),  # 0.058-0.079: a slab of the prior in 64 dimensions
    ],
)
def test_a_prior_region_of_known_mass_left_empty_reads_as_that_mass(
    d: int, a: float, low: float, high: float
) -> None:
    truth = NormalDist().cdf(a)
    got = float(hole_stats(truncated_prior(10_000, d, a), None)[0]["holes"])
    assert truth - low < got < truth + high, (got, truth)


def test_narrow_posteriors_pushed_out_of_half_the_prior_leave_half_in_holes() -> None:
    """Stochastic codes: means of the truncated prior, posteriors of width 0.05 around them."""
    mu = truncated_prior(10_000, 8, 0.0).double()
    stats, _, _ = hole_stats(mu, torch.full_like(mu, 2 * math.log(0.05)))
    assert 0.42 < float(stats["holes"]) < 0.52  # measured 0.459-0.477


@pytest.mark.parametrize(
    ("d", "k", "mean", "sd", "rel"),
    [
        (2, 2, 0.5, 1.0, 0.2),  # measured KL(q||p) 0.234-0.271 of 0.250, KL(p||q) 0.198-0.248
        (16, 4, 0.0, 0.5, 0.2),  # 1.19-1.37 of 1.27; 2.68-2.90 of 3.23
        (16, 4, 1.0, 0.7, 0.2),  # 2.38-2.48 of 2.41; 4.66-5.10 of 4.74
        (64, 4, 0.5, 0.8, 0.3),  # 0.49-0.58 of 0.67; 0.75-0.77 of 1.01: a quarter low at d = 64
    ],
)
def test_gaussian_aggregates_give_their_closed_form_kls(
    d: int, k: int, mean: float, sd: float, rel: float
) -> None:
    """q = N(m, sd^2) in k of d dimensions, N(0, 1) in the rest, against p = N(0, I)."""
    mu, logvar = gaussian_posteriors(10_000, d, 0.1)  # aggregate N(0, I)...
    gen = torch.Generator().manual_seed(5)
    shifted = mean + torch.randn(10_000, k, generator=gen, dtype=torch.float64) * math.sqrt(
        sd**2 - 0.01
    )
    mu[:, :k] = shifted  # ...but N(mean, sd^2) in the first k dimensions
    kl_qp = 0.5 * k * (sd**2 + mean**2 - 1 - math.log(sd**2))
    kl_pq = 0.5 * k * (1 / sd**2 + mean**2 / sd**2 - 1 + math.log(sd**2))
    stats, _, _ = hole_stats(mu, logvar)
    assert float(stats["kl_agg_prior"]) == pytest.approx(kl_qp, rel=rel, abs=0.05)
    assert float(stats["kl_prior_agg"]) == pytest.approx(kl_pq, rel=rel, abs=0.05)


def test_codes_in_a_corner_leave_most_of_the_prior_in_holes() -> None:
    codes = 0.1 * torch.randn(2000, 2, generator=torch.Generator().manual_seed(2)) + 2.5
    stats, prior, holes = hole_stats(codes, None, num_prior=2000, num_reference=2000)
    assert float(stats["holes"]) > 0.9
    assert holes.shape == (2000,) and prior.shape == (2000, 2)
    assert float(stats["kl_prior_agg"]) > 5  # holes inflate KL(p || q)


def test_the_model_prior_comes_in_through_its_sampler() -> None:
    """Codes that fill a wide prior N(0, 4 I) have no holes against it, but do against N(0, I)."""
    codes = 2 * torch.randn(10_000, 4, generator=torch.Generator().manual_seed(6))
    wide = lambda n, gen: 2 * torch.randn(n, 4, generator=gen, dtype=torch.float64)  # noqa: E731
    assert float(hole_stats(codes, None, prior_sample=wide)[0]["holes"]) < 0.005
    narrow = hole_stats(codes, None)[0]
    assert float(narrow["kl_agg_prior"]) > 1  # KL(N(0,4I) || N(0,I)) = 2 (4 - 1 - log 4) = 3.2


def test_silverman_width_and_active_covariance() -> None:
    codes = torch.randn(1000, 4, generator=torch.Generator().manual_seed(3)) * torch.tensor(
        [1.0, 2.0, 0.01, 1.0]
    )
    h2 = silverman_logvar(codes).exp()
    factor = (4 / (1000 * 6)) ** (2 / 8)
    torch.testing.assert_close(h2, factor * codes.double().var(0), rtol=1e-6, atol=0)
    codes[:, 3] = codes[:, 0]  # perfectly correlated with dim 0
    offdiag, k = active_offdiag_cov(codes)
    assert int(k) == 3  # dim 2 has variance 1e-4 < 0.01: inactive
    cov = torch.cov(codes[:, [0, 1, 3]].double().T)
    assert float(offdiag) == pytest.approx(float((cov.abs().sum() - cov.diag().sum()) / 6))

"""Chunked aggregated-posterior density against brute force; hole fractions in known cases."""

from __future__ import annotations

import math

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


def test_prior_samples_as_encodings_give_the_level() -> None:
    codes = torch.randn(4000, 2, generator=torch.Generator().manual_seed(1))
    fractions = [
        float(hole_stats(codes, None, num_prior=4000, num_reference=4000, seed=s)[0]["holes"])
        for s in range(3)
    ]
    assert 0.004 < sum(fractions) / 3 < 0.02  # the 1% level, up to Monte-Carlo error


def test_encodings_in_a_corner_leave_most_of_the_prior_in_holes() -> None:
    codes = 0.1 * torch.randn(2000, 2, generator=torch.Generator().manual_seed(2)) + 2.5
    stats, prior, holes = hole_stats(codes, None, num_prior=2000, num_reference=1000)
    assert float(stats["holes"]) > 0.9
    assert holes.shape == (2000,) and prior.shape == (2000, 2)
    assert float(stats["kl_prior_agg"]) > 5  # holes inflate KL(p || q)


def test_gaussian_posteriors_equal_to_the_prior_leave_no_holes() -> None:
    mu, logvar = torch.zeros(3000, 3), torch.zeros(3000, 3)  # q(z|x) = p(z) for every x: q = p
    stats, _, _ = hole_stats(mu, logvar, num_prior=4000, num_reference=3000)
    assert 0.004 < float(stats["holes"]) < 0.02  # the level itself
    assert abs(float(stats["kl_prior_agg"])) < 1e-6 and abs(float(stats["kl_agg_prior"])) < 1e-6


def test_sharp_gaussian_posteriors_leave_the_prior_in_holes() -> None:
    """Spiky q(z|x_n) at prior-distributed means: q is a bed of nails, the prior falls between.

    Scoring the draws z_n ~ q(z|x_n) leave-one-out would set the threshold below every prior
    sample and report no hole at all.
    """
    mu = torch.randn(2000, 3, generator=torch.Generator().manual_seed(3))
    stats, _, _ = hole_stats(mu, torch.full((2000, 3), -12.0), num_prior=2000, num_reference=500)
    assert float(stats["holes"]) > 0.9
    assert float(stats["kl_agg_prior"]) > 5  # KL(q || p) of a bed of nails is large and positive


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

"""Latent samplers: the EM mixture recovers a known mixture; the second stage learns the codes."""

from __future__ import annotations

import pytest
import torch

from latentzoo.metrics import frechet_distance_between
from latentzoo.zoo.samplers import GaussianMixture, SecondStage, StandardNormal


def two_blobs(n: int = 3000) -> torch.Tensor:
    """1/3 of the codes near (4, 0, 0), 2/3 near (-2, -1, 0) with a correlated covariance."""
    a = torch.randn(n // 3, 3) * 0.2 + torch.tensor([4.0, 0.0, 0.0])
    mix = torch.tensor([[1.0, 0.8, 0.0], [0.0, 0.6, 0.0], [0.0, 0.0, 0.5]])
    b = torch.randn(n - n // 3, 3) @ mix + torch.tensor([-2.0, -1.0, 0.0])
    return torch.cat([a, b])


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gmm_recovers_a_known_mixture(covariance: str) -> None:
    gmm = GaussianMixture(3, n_components=2, covariance=covariance)  # type: ignore[arg-type]
    gmm.fit(two_blobs())
    order = gmm.means[:, 0].argsort(descending=True)
    assert torch.allclose(
        gmm.weights[order], torch.tensor([1 / 3, 2 / 3], dtype=torch.float64), atol=0.02
    )
    expected = torch.tensor([[4.0, 0.0, 0.0], [-2.0, -1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(gmm.means[order], expected, atol=0.1)


def test_full_covariance_fits_correlated_codes_better_than_diag() -> None:
    codes = two_blobs()
    full, diag = GaussianMixture(3, 2, "full"), GaussianMixture(3, 2, "diag")
    full.fit(codes)
    diag.fit(codes)
    assert full.log_prob(codes).mean() > diag.log_prob(codes).mean() + 0.05
    # Its samples have the codes' distribution (Fréchet distance of the fitted Gaussians).
    assert frechet_distance_between(full.sample(3000), codes) < 0.05


def test_gmm_state_round_trips_through_state_dict() -> None:
    fitted = GaussianMixture(3, 2)
    fitted.fit(two_blobs())
    fresh = GaussianMixture(3, 2)
    fresh.load_state_dict(fitted.state_dict())
    z = torch.randn(10, 3)
    assert torch.equal(fresh.log_prob(z), fitted.log_prob(z))


def test_samplers_refuse_codes_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"needs \(N >= 10, 3\) codes"):
        GaussianMixture(3, 10).fit(torch.randn(5, 3))
    with pytest.raises(ValueError, match="codes"):
        SecondStage(3, epochs=1).fit(torch.randn(50, 4))


def test_second_stage_moves_samples_onto_the_codes() -> None:
    codes = torch.randn(2000, 3) * 0.3 + torch.tensor([2.0, -1.0, 0.5])
    stage2 = SecondStage(3, width=16, epochs=15)
    gamma0 = float(stage2.vae.likelihood.gamma)  # type: ignore[arg-type]
    stage2.fit(codes)
    fd_fitted = frechet_distance_between(stage2.sample(2000), codes)
    fd_normal = frechet_distance_between(StandardNormal(3).sample(2000), codes)
    assert fd_fitted < 0.2 * fd_normal
    assert float(stage2.vae.likelihood.gamma) < gamma0  # type: ignore[arg-type]

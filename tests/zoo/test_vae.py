"""The VAE's terms against torch.distributions, and beta-VAE's single changed term."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from latentzoo.zoo import VAE, BetaVAE
from latentzoo.zoo.likelihoods import Bernoulli, GaussianFixed, GaussianLearned, make_likelihood
from latentzoo.zoo.vae import kl_standard_normal


def test_kl_matches_torch_distributions() -> None:
    mu, logvar = torch.randn(6, 5), torch.randn(6, 5)
    q = D.Normal(mu, torch.exp(0.5 * logvar))
    p = D.Normal(torch.zeros(5), torch.ones(5))
    expected = D.kl_divergence(q, p).sum(1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), expected)


def test_likelihood_nll_matches_log_prob() -> None:
    x = torch.rand(4, 1, 6, 6)
    out = torch.randn(4, 1, 6, 6)
    expected = -D.Bernoulli(logits=out, validate_args=False).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(Bernoulli().nll(x, out), expected)

    expected = -D.Normal(out, 0.3).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(GaussianFixed(0.3).nll(x, out), expected)

    lik = GaussianLearned()
    out2 = torch.randn(4, 2, 6, 6)
    mu, logvar = lik.split(out2)
    expected = -D.Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(lik.nll(x, out2), expected)


def test_learned_variance_is_bounded_below() -> None:
    lik = GaussianLearned(min_var=1e-3)
    _, logvar = lik.split(torch.full((1, 2, 3, 3), -1e4))
    assert torch.all(logvar >= math.log(1e-3) - 1e-6)


def test_bernoulli_refuses_data_outside_unit_interval() -> None:
    model = VAE(data_shape=(8,), latent_dim=2, likelihood="bernoulli")
    with pytest.raises(ValueError, match="needs data in \\[0, 1\\]"):
        model.compute_losses(torch.randn(4, 8) * 3)


def test_unknown_likelihood_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        make_likelihood("poisson")  # type: ignore[arg-type]


def test_loss_is_negative_elbo_and_beta_scales_only_the_kl() -> None:
    torch.manual_seed(1)
    vae = VAE(data_shape=(10,), latent_dim=3)
    beta = BetaVAE(data_shape=(10,), latent_dim=3, beta=4.0)
    beta.load_state_dict(vae.state_dict())
    x = torch.randn(8, 10)
    torch.manual_seed(2)
    a = vae.compute_losses(x)
    torch.manual_seed(2)
    b = beta.compute_losses(x)
    torch.testing.assert_close(a["loss"], a["recon"] + a["kl"])
    torch.testing.assert_close(b["recon"], a["recon"])
    torch.testing.assert_close(b["loss"], a["recon"] + 4.0 * a["kl"])


def test_capacity_objective_follows_the_schedule() -> None:
    model = BetaVAE(
        data_shape=(4,), objective="capacity", gamma=10.0, capacity_max=20.0, capacity_steps=100
    )
    kl = torch.tensor(3.0)
    assert model.capacity() == 0.0
    torch.testing.assert_close(model.kl_penalty(kl), torch.tensor(30.0))
    model.trainer = None  # type: ignore[assignment]
    model._trainer = type("T", (), {"global_step": 50})()
    assert model.capacity() == pytest.approx(10.0)
    torch.testing.assert_close(model.kl_penalty(kl), torch.tensor(70.0))  # 10 * |3 - 10|


@pytest.mark.parametrize("bad", [{"latent_dim": 0}, {"lr": 0.0}, {"width": 0}])
def test_bad_arguments_raise(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        VAE(data_shape=(4,), **bad)


def test_wrong_batch_shape_is_explained() -> None:
    model = VAE(data_shape=(1, 28, 28))
    with pytest.raises(ValueError, match=r"built for samples of shape \(1, 28, 28\)"):
        model.training_step((torch.rand(2, 3, 32, 32), torch.zeros(2)), 0)

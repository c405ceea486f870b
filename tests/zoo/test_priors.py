"""Priors: normalised densities, KLs against closed forms, sampling against the density, the
VampPrior's gradients and data initialisation, and checkpoints that re-create the prior."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from testutils import trainer
from torch import Tensor
from torch import distributions as D
from torch.utils.data import DataLoader, TensorDataset

import latentzoo
from latentzoo.datamodules import Synthetic
from latentzoo.zoo import VAE, VAEGAN, BetaVAE, FlowPrior, MoG, Prior, StandardNormal, VampPrior
from latentzoo.zoo.densities import build_density as build_prior
from latentzoo.zoo.densities import kl_standard_normal, log_normal_diag

PRIORS = {
    "StandardNormal": lambda: StandardNormal(),
    "MoG": lambda: MoG(num_components=3),
    "VampPrior": lambda: VampPrior(num_components=4, init="noise"),
    "FlowPrior": lambda: FlowPrior(num_layers=3, hidden=16),
}


def perturbed(prior: Prior, scale: float = 0.4) -> Prior:
    """Random non-trivial parameters: the flow and the MoG start close to N(0, I)."""
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(scale * torch.randn_like(p))
    return prior


def bound(name: str, latent_dim: int = 2, data_dim: int = 6) -> VAE:
    model = VAE(data_shape=(data_dim,), latent_dim=latent_dim, width=4, prior=PRIORS[name]())
    perturbed(model.prior)
    return model.eval()


def grid(lim: float = 25.0, n: int = 1001) -> tuple[Tensor, float]:
    """(n * n, 2) points of a square grid and the area of one cell, float64."""
    t = torch.linspace(-lim, lim, n, dtype=torch.float64)
    gx, gy = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], 1), float(t[1] - t[0]) ** 2


@pytest.mark.parametrize("name", list(PRIORS))
def test_density_integrates_to_one_on_a_2d_grid(name: str) -> None:
    model = bound(name).double()
    z, cell = grid()
    with torch.no_grad():
        mass = float(model.prior.log_prob(z).exp().sum()) * cell
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_flow_prior_in_one_dimension_is_a_normalised_learned_gaussian() -> None:
    model = bound("FlowPrior", latent_dim=1).double()
    z = torch.linspace(-15, 15, 6001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        density = model.prior.log_prob(z).exp()
        draws = model.prior.sample(20_000)
    assert float(density.sum()) * float(z[1, 0] - z[0, 0]) == pytest.approx(1.0, abs=1e-3)
    mean = float((z[:, 0] * density).sum() / density.sum())
    assert float(draws.mean()) == pytest.approx(mean, abs=0.05)


def test_one_component_mog_at_the_origin_is_the_standard_normal() -> None:
    model = VAE(data_shape=(5,), latent_dim=3, prior=MoG(num_components=1))
    with torch.no_grad():
        model.prior.means.zero_()
    z = torch.randn(50, 3)
    torch.testing.assert_close(model.prior.log_prob(z), StandardNormal().log_prob(z))
    expected = D.Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(model.prior.log_prob(z), expected)
    # Its one-sample KL estimate at any z is exactly log q(z|x) - log N(z; 0, I) ...
    mu, logvar = torch.randn(50, 3), torch.randn(50, 3)
    kl_mog = model.prior.kl(mu, logvar, z)
    torch.testing.assert_close(kl_mog, log_normal_diag(z, mu, logvar) - expected)
    # ... whose average over z ~ q(z|x) is the closed form.
    mu, logvar = torch.tensor([[0.5, -1.0, 0.2]]), torch.tensor([[-0.5, 0.3, -1.5]])
    n = 200_000
    zs = mu + torch.randn(n, 3) * torch.exp(0.5 * logvar)
    with torch.no_grad():
        est = model.prior.kl(mu.expand(n, 3), logvar.expand(n, 3), zs)
    closed = float(kl_standard_normal(mu, logvar))
    assert float(est.mean()) == pytest.approx(closed, abs=4 * float(est.std()) / math.sqrt(n))


def test_monte_carlo_kl_averages_to_the_gaussian_closed_form() -> None:
    prior = MoG(num_components=1)
    VAE(data_shape=(4,), latent_dim=2, prior=prior)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[1.0, -0.5]]))
        prior.logvars.copy_(torch.tensor([[0.4, -0.7]]))
    mu, logvar = torch.tensor([[0.2, 0.3]]), torch.tensor([[-0.3, 0.1]])
    q = D.Normal(mu, torch.exp(0.5 * logvar))
    p = D.Normal(prior.means.detach(), torch.exp(0.5 * prior.logvars.detach()))
    closed = float(D.kl_divergence(q, p).sum())
    n = 200_000
    zs = q.sample((n,)).squeeze(1)
    with torch.no_grad():
        est = prior.kl(mu.expand(n, 2), logvar.expand(n, 2), zs)
    assert float(est.mean()) == pytest.approx(closed, abs=4 * float(est.std()) / math.sqrt(n))


def test_default_vae_losses_are_unchanged_by_the_prior_argument() -> None:
    """The default VAE's loss is the closed-form N(0, I) ELBO, bit for bit, with the same draws."""
    torch.manual_seed(3)
    default = VAE(data_shape=(7,), latent_dim=3, width=4)
    explicit = VAE(data_shape=(7,), latent_dim=3, width=4, prior=StandardNormal())
    explicit.load_state_dict(default.state_dict())
    x = torch.randn(9, 7)
    torch.manual_seed(4)
    a = default.compute_losses(x)
    torch.manual_seed(4)
    b = explicit.compute_losses(x)
    for key in ("loss", "recon", "kl", "nelbo"):
        assert torch.equal(a[key], b[key]), key
    mu, logvar = default.posterior(x)  # the reference, written out
    torch.manual_seed(4)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    recon = default.likelihood.nll(x, default.decoder(z)).mean()
    kl = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(a["loss"], recon + kl)
    assert set(default.state_dict()) == set(explicit.state_dict())  # no prior weights


def test_mog_samples_have_the_mixtures_moments() -> None:
    model = bound("MoG")
    prior = model.prior
    assert isinstance(prior, MoG)
    pi = torch.softmax(prior.logits.detach(), 0).double()  # (K,)
    m, v = prior.means.detach().double(), prior.logvars.detach().double().exp()
    mean = pi @ m
    second = (pi[:, None, None] * (torch.diag_embed(v) + m[:, :, None] * m[:, None, :])).sum(0)
    cov = second - mean[:, None] * mean[None]
    with torch.no_grad():
        draws = prior.sample(200_000).double()
    torch.testing.assert_close(draws.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), cov, atol=0.03, rtol=0)


@pytest.mark.parametrize("name", ["VampPrior", "FlowPrior"])
def test_sample_mean_and_covariance_match_the_density_by_quadrature(name: str) -> None:
    model = bound(name).double()
    z, cell = grid()
    with torch.no_grad():
        w = model.prior.log_prob(z).exp() * cell  # (G,)
        draws = model.prior.sample(100_000)
    mean = (w[:, None] * z).sum(0)
    cov = (w[:, None, None] * (z - mean)[:, :, None] * (z - mean)[:, None, :]).sum(0)
    torch.testing.assert_close(draws.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), cov, atol=0.05, rtol=0.03)


def test_flow_inverse_round_trips_and_is_not_the_identity() -> None:
    prior = bound("FlowPrior", latent_dim=5).prior.double()
    assert isinstance(prior, FlowPrior)
    e = torch.randn(64, 5, dtype=torch.float64)
    z = e
    for layer in prior.layers:
        z = layer(z)
    back = z
    for layer in reversed(prior.layers):
        back, _ = layer.inverse(back)
    torch.testing.assert_close(back, e)
    assert (z - e).abs().max() > 0.1
    assert torch.isfinite(prior.log_prob(prior.sample(64))).all()


def test_vamp_pseudo_inputs_receive_gradients() -> None:
    model = VAE(data_shape=(6,), latent_dim=2, width=4, prior=VampPrior(5, init="noise"))
    model.compute_losses(torch.randn(8, 6))["loss"].backward()
    grad = model.prior.pseudo_inputs.grad
    assert grad is not None and grad.abs().sum() > 0
    # The encoder is the model's, once: the state dict holds no copy of it under prior.
    assert [k for k in model.state_dict() if k.startswith("prior.")] == [
        "prior.pseudo_inputs",
        "prior.initialised",
    ]


def test_vamp_pseudo_inputs_start_as_training_inputs_once() -> None:
    dm = Synthetic(data_dim=6, num_train=64, val_size=16, batch_size=16)
    model = VAE(data_shape=(6,), latent_dim=2, width=4, prior=VampPrior(5, init="data"))
    before = model.prior.pseudo_inputs.detach().clone()
    trainer(max_steps=1).fit(model, dm)
    assert dm.train_set is not None
    u = model.prior.pseudo_inputs.detach()
    assert not torch.equal(u, before)
    # One Adam step (lr 1e-3) away from five distinct training inputs.
    dist = torch.cdist(u, dm.train_set.x.float())  # (5, N)
    assert (dist.min(1).values < 0.05).all() and len(set(dist.argmin(1).tolist())) == 5
    trained = u.clone()
    trainer(max_steps=1).fit(model, dm)  # a second fit keeps them: no re-initialisation
    assert (model.prior.pseudo_inputs.detach() - trained).abs().max() < 0.05


def test_vamp_data_init_without_a_datamodule_says_what_to_do() -> None:
    model = VAE(data_shape=(6,), latent_dim=2, width=4, prior=VampPrior(5, init="data"))
    loader = DataLoader(TensorDataset(torch.randn(32, 6), torch.zeros(32)), batch_size=8)
    with pytest.raises(RuntimeError, match="init='noise'"):
        trainer(max_steps=1).fit(model, loader)


def test_unbound_prior_and_bad_configs_fail_with_a_message() -> None:
    with pytest.raises(RuntimeError, match="not bound to a model"):
        MoG().sample(3)
    with pytest.raises(ValueError, match="not a latentzoo Prior"):
        build_prior({"class_path": "os.path.join", "init_args": {}})
    with pytest.raises(ValueError, match="num_components >= 1"):
        MoG(num_components=0)
    prior = MoG()
    VAE(data_shape=(4,), latent_dim=2, prior=prior)
    with pytest.raises(ValueError, match="give each model its own prior"):
        VAE(data_shape=(4,), latent_dim=3, prior=prior)


@pytest.mark.parametrize("cls", [VAE, BetaVAE, VAEGAN])
@pytest.mark.parametrize("name", list(PRIORS))
def test_checkpoint_with_each_prior_loads_by_class_and_samples(
    cls: type[VAE], name: str, tmp_path: Path
) -> None:
    model = cls(data_shape=(6,), latent_dim=2, width=4, prior=PRIORS[name]())
    dm = Synthetic(data_dim=6, num_train=48, val_size=16, batch_size=16)
    before = {k: v.clone() for k, v in model.prior.state_dict().items()}
    fit = trainer(max_steps=2)
    fit.fit(model, dm)
    path = tmp_path / "model.ckpt"
    fit.save_checkpoint(path)
    loaded = latentzoo.load(path)
    assert type(loaded) is cls and type(loaded.prior) is type(model.prior)
    saved, back = model.state_dict(), loaded.state_dict()
    assert set(saved) == set(back)
    assert all(torch.equal(saved[k].cpu(), back[k]) for k in saved)
    if name != "StandardNormal":  # the prior trains with the model
        moved = [k for k, v in model.prior.state_dict().items() if not torch.equal(v, before[k])]
        assert moved
    with torch.no_grad():
        assert loaded.sample(8).shape == (8, 6)

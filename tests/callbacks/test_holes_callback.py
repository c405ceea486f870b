"""HolesCallback: logs the holes keys from model.posterior, in the gated space, and draws."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from latentzoo.callbacks import HolesCallback
from latentzoo.callbacks.holes import gated_posterior, holes_figure, open_gate, prior_sampler
from latentzoo.datamodules import Synthetic
from latentzoo.metrics.holes import hole_stats
from latentzoo.zoo import LMGAE, VAE


def test_logged_values_match_the_metric_on_the_model_posteriors(
    tiny_images, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = VAE(data_shape=(1, 28, 28), latent_dim=3, width=4)
    cb = HolesCallback(num_prior=300, num_reference=40, every_n_epochs=1)
    trainer = L.Trainer(
        logger=CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[cb],
    )
    trainer.test(model, tiny_images, verbose=False)
    model.eval()
    with torch.no_grad():
        mu, logvar = model.posterior(tiny_images.train_set.x.float() / 255)
    prior = prior_sampler(model, None)  # the model's own prior, as the callback draws it
    expected, _, _ = hole_stats(mu, logvar, num_prior=300, num_reference=40, prior_sample=prior)
    for key in ("holes", "kl_prior_agg", "kl_agg_prior", "intrinsic_dim", "low_dim_share"):
        got = float(trainer.callback_metrics[f"test/{key}"])
        assert got == pytest.approx(float(expected[key]), rel=1e-5, abs=1e-8)
    assert list(Path(trainer.logger.log_dir).glob("images/holes_latents_step*.png"))


@pytest.mark.parametrize("d", [1, 2, 5])
def test_picture_for_any_latent_dimension(d: int) -> None:
    codes = torch.randn(200, d) * 0.3
    prior = torch.randn(100, d)
    image = holes_figure(codes, prior, prior.norm(dim=1) > 1.5)
    assert image.ndim == 3 and image.shape[0] == 3 and image.shape[1] > 100
    assert float(image.min()) >= 0 and float(image.max()) <= 1


def gated_holes_agree_with_a_direct_computation(
    model: LMGAE, gate: torch.Tensor, tmp_path: Path
) -> torch.Tensor:
    """Run HolesCallback at test on synthetic data; check its holes against ``hole_stats`` of the
    codes and prior draws through ``gate``; return the callback's prior draws."""
    data = Synthetic(latent_dim=3, data_dim=16, num_train=300, num_test=100, val_size=50)
    cb = HolesCallback(num_prior=200, num_reference=40, picture=False)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[cb], default_root_dir=tmp_path)  # fmt: skip
    trainer.test(model, data, verbose=False)
    model.eval()
    with torch.no_grad():
        codes = gated_posterior(*model.posterior(data.train_set.x), gate)[0]
    expected, _, _ = hole_stats(
        codes, None, num_prior=200, num_reference=40, prior_sample=prior_sampler(model, gate)
    )
    assert float(trainer.callback_metrics["test/holes"]) == pytest.approx(float(expected["holes"]))
    prior = cb.metric.last_prior
    assert prior is not None
    return prior


def test_lmgae_codes_and_prior_draws_pass_through_the_same_gate(tmp_path: Path) -> None:
    """The metric sees m * E(x) against m * z, z ~ p: what the decoder reads, closed dims 0."""
    model = LMGAE(data_shape=(16,), latent_dim=6, width=4)
    with torch.no_grad():
        model.mask_param.copy_(torch.tensor([5.0, 5.0, 0.0, 5.0, 0.0, 0.0]))  # m ~ 1 or 0
    gate = model.latent_usage()
    closed = gate == 0
    assert closed.tolist() == [False, False, True, False, True, True]
    prior = gated_holes_agree_with_a_direct_computation(model, gate, tmp_path)
    assert prior.shape == (200, 6)  # every dimension, gated
    assert bool((prior[:, closed] == 0).all()) and bool((prior[:, ~closed] != 0).all())


def test_a_closed_dimension_makes_no_holes_once_both_sides_are_gated() -> None:
    """Codes that fill the prior in their open dimensions and sit at 5 in the closed ones: the
    ungated codes leave the whole prior in holes, the gated ones none."""
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(2000, 4, generator=gen, dtype=torch.float64)
    mu[:, 2] = 5.0  # what an encoder may still put in a dimension its decoder never reads
    gate = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64)

    def prior(n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randn(n, 4, generator=g, dtype=torch.float64) * gate

    ungated = hole_stats(mu, None, num_prior=2000, num_reference=2000)[0]
    gated = hole_stats(gated_posterior(mu, None, gate)[0], None, 2000, 2000, prior_sample=prior)[0]
    assert float(ungated["holes"]) > 0.99
    assert float(gated["holes"]) < 0.01


@pytest.mark.parametrize("scale", [1.0, 0.03])  # a 0/1 mask, and one shrunk as a whole
def test_a_gate_entry_below_a_tenth_of_the_largest_is_zero_on_both_sides(
    scale: float, tmp_path: Path
) -> None:
    """Entries of 1e-5 and 0.05 (x scale) beside entries near 1 (x scale) are 0 for the holes,
    codes and prior draws alike; the rest keep their value."""
    model = LMGAE(data_shape=(16,), latent_dim=6, width=4)
    mask = torch.tensor([0.99, 0.99, 1e-5, 0.99, 0.05, 0.0]) * scale
    with torch.no_grad():
        model.mask_param.copy_(-torch.log1p(-mask))  # m = 1 - exp(-v)
    torch.testing.assert_close(model.mask.detach(), mask)
    gate = open_gate(model)
    assert gate is not None
    torch.testing.assert_close(gate, mask * torch.tensor([1.0, 1, 0, 1, 0, 0]))
    assert open_gate(VAE(data_shape=(16,), latent_dim=2, width=4)) is None
    prior = gated_holes_agree_with_a_direct_computation(model, gate, tmp_path)
    assert bool((prior[:, [2, 4, 5]] == 0).all()) and bool((prior[:, [0, 1, 3]] != 0).all())


def test_a_tiny_gate_entry_over_shrunk_codes_reads_as_holes_unless_zeroed() -> None:
    """Why such entries are zeroed: the estimate does not depend on a coordinate's scale, so a
    gate of 1e-5 over codes of spread 0.02 (a dimension LMGAE's variance penalty closed) reads as
    a collapsed direction; through ``open_gate``, codes that fill the prior in their open
    dimensions read no holes."""
    gen = torch.Generator().manual_seed(1)
    mu = torch.randn(2000, 4, generator=gen, dtype=torch.float64)
    mu[:, 2] *= 0.02
    model = LMGAE(data_shape=(16,), latent_dim=4, width=4)
    with torch.no_grad():
        model.mask_param.copy_(torch.tensor([30.0, 30.0, 1e-5, 30.0]))  # m = 1, 1, 1e-5, 1
    soft, opened = model.latent_usage(), open_gate(model)
    assert soft is not None and opened is not None

    def stats(gate: torch.Tensor) -> float:
        gate = gate.double()

        def prior(n: int, g: torch.Generator) -> torch.Tensor:
            return torch.randn(n, 4, generator=g, dtype=torch.float64) * gate

        codes = gated_posterior(mu, None, gate)[0]
        return float(hole_stats(codes, None, 2000, 2000, prior_sample=prior)[0]["holes"])

    assert stats(soft.detach()) > 0.8
    assert stats(opened) < 0.01


def test_gated_posterior_of_a_stochastic_encoder_is_exactly_zero_where_closed() -> None:
    mu, logvar = torch.randn(5, 3), torch.zeros(5, 3)
    gate = torch.tensor([1.0, 0.5, 0.0])
    gmu, glogvar = gated_posterior(mu, logvar, gate)
    assert glogvar is not None
    torch.testing.assert_close(gmu, mu * gate)
    torch.testing.assert_close(glogvar[:, :2], torch.log(gate[:2]).mul(2).expand(5, 2))
    z = gmu + torch.randn(5, 3) * torch.exp(0.5 * glogvar)
    assert bool((z[:, 2] == 0).all())


def test_validate_always_evaluates_whatever_every_n_epochs(tiny_images, tmp_path: Path) -> None:
    model = VAE(data_shape=(1, 28, 28), latent_dim=2, width=4)
    cb = HolesCallback(num_prior=100, num_reference=20, every_n_epochs=5, picture=False)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[cb], default_root_dir=tmp_path)  # fmt: skip
    trainer.validate(model, tiny_images, verbose=False)
    assert "val/holes" in trainer.callback_metrics


@pytest.mark.parametrize(("mean", "std"), [((0.0, 0.0), 1.0), ((1.0, -1.5), 0.5)])
def test_picture_contours_hold_the_priors_1_2_3_sigma_masses(mean, std):
    """The contours come from the prior's draws; for a Gaussian prior (also not N(0, I)) the
    regions they bound hold its true 1, 2 and 3 sigma masses."""
    from latentzoo.callbacks.holes import HPD_MASSES, _prior_contours

    torch.manual_seed(0)
    draws = torch.tensor(mean) + std * torch.randn(20000, 2)
    density, levels = _prior_contours(draws, lim=4.0)
    grid = torch.linspace(-4, 4, density.shape[0])
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    true = torch.exp(-0.5 * ((gx - mean[0]) ** 2 + (gy - mean[1]) ** 2) / std**2)
    true /= true.sum()
    masses = [float(true[density >= level].sum()) for level in reversed(levels)]
    assert masses == pytest.approx(list(HPD_MASSES), abs=0.03)

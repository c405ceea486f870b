"""HolesCallback: logs the holes keys from model.posterior and draws the picture."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from latentzoo.callbacks import HolesCallback
from latentzoo.callbacks.holes import holes_figure, prior_sampler
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
    for key in ("holes", "kl_prior_agg", "kl_agg_prior"):
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


def test_lmgae_holes_are_measured_on_its_active_dimensions(tmp_path: Path) -> None:
    model = LMGAE(data_shape=(16,), latent_dim=6, width=4)
    with torch.no_grad():
        model.mask_param.copy_(torch.tensor([5.0, 5.0, 0.0, 5.0, 0.0, 0.0]))  # m ~ 1 or 0
    assert model.used_latent_dims().tolist() == [0, 1, 3]
    data = Synthetic(latent_dim=3, data_dim=16, num_train=300, num_test=100, val_size=50)
    cb = HolesCallback(num_prior=200, num_reference=40, picture=False)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[cb], default_root_dir=tmp_path)  # fmt: skip
    trainer.test(model, data, verbose=False)
    assert cb.metric.last_prior is not None
    assert cb.metric.last_prior.shape == (200, 3)  # the prior over the 3 open dimensions only


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

"""ActiveDims: mask counts for LMGAE, Burda's active units for VAEs, and the trajectory image."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from latentzoo.callbacks.active_dims import ActiveDims, render_trajectory
from latentzoo.zoo import LMGAE, VAE


def _loader(n: int = 64, d: int = 8) -> DataLoader:
    torch.manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, d), torch.zeros(n)), batch_size=16)


def _trainer(tmp_path, callback: ActiveDims, **kw) -> L.Trainer:
    return L.Trainer(
        logger=CSVLogger(tmp_path),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )


def test_vae_active_units_follow_the_posterior_mean_variance(tmp_path):
    model = VAE(data_shape=(8,), latent_dim=4, width=4)
    scales = torch.tensor([0.0, 0.05, 0.2, 1.0])  # variances ~0, 0.0025, 0.04, 1 (delta = 0.01)
    model.posterior = lambda x: (x[:, :4] * scales, torch.zeros(len(x), 4))  # type: ignore
    callback = ActiveDims()
    trainer = _trainer(tmp_path, callback)
    trainer.validate(model, _loader())
    assert trainer.callback_metrics["val/active_dims"] == 2
    # validate() runs no sanity check: one trajectory entry, with the variance of each dim
    assert len(callback.trajectory) == 1
    assert callback.trajectory[0][3] > 0.5 and callback.trajectory[0][0] == 0
    assert (
        tmp_path / "lightning_logs" / "version_0" / "val_latent_variance_trajectory.png"
    ).exists()


def test_lmgae_logs_mask_count_and_writes_the_trajectory_image(tmp_path):
    model = LMGAE(data_shape=(8,), latent_dim=5, width=4)
    with torch.no_grad():
        model.mask_param.copy_(torch.tensor([0.0, 0.05, 1.0, 3.0, 3.0]))  # m ~ 0, .05, .63, .95
    callback = ActiveDims()
    trainer = _trainer(
        tmp_path, callback, max_epochs=2, limit_train_batches=1, num_sanity_val_steps=0
    )
    trainer.fit(model, _loader(), _loader())
    assert len(callback.trajectory) == 2
    assert trainer.callback_metrics["val/active_dims"] == model.active_dims
    torch.testing.assert_close(callback.trajectory[-1], model.mask.detach())
    assert (tmp_path / "lightning_logs" / "version_0" / "val_mask_trajectory.png").exists()


def test_trajectory_state_survives_a_checkpoint():
    callback = ActiveDims()
    callback.trajectory = [torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.0])]
    restored = ActiveDims()
    restored.load_state_dict(callback.state_dict())
    assert all(
        torch.equal(a, b) for a, b in zip(restored.trajectory, callback.trajectory, strict=True)
    )


def test_render_trajectory_is_an_rgb_image_whose_colours_follow_the_values():
    closed_then_open = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # (epochs, dims)
    image = render_trajectory(closed_then_open, masked=True)
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # a drawn figure, not a blank


def test_test_stage_counts_active_units_over_the_test_batches(tmp_path) -> None:
    model = VAE(data_shape=(8,), latent_dim=4, width=4)
    scales = torch.tensor([0.0, 0.0, 0.5, 1.0])  # two dims vary (variances 0.25, 1 > 0.01)
    model.posterior = lambda x: (x[:, :4] * scales, torch.zeros(len(x), 4))  # type: ignore
    callback = ActiveDims()
    trainer = _trainer(tmp_path, callback)
    trainer.test(model, _loader())
    assert trainer.callback_metrics["test/active_dims"] == 2
    assert callback.trajectory == []  # the trajectory is of validation epochs only


def test_a_fit_ending_between_validations_keeps_the_last_count(tmp_path) -> None:
    model = VAE(data_shape=(8,), latent_dim=4, width=4)
    callback = ActiveDims()
    trainer = _trainer(tmp_path, callback, max_steps=6, num_sanity_val_steps=0)
    trainer.fit(model, _loader(), _loader())  # 4 steps per epoch: validation after step 4 only
    assert len(callback.trajectory) == 1  # no validation batch since: nothing new to count
    assert "val/active_dims" in trainer.callback_metrics

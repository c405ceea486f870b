"""A short VAE run on real Fashion-MNIST (Debian's dataset-fashion-mnist package)."""

from __future__ import annotations

import lightning as L
import torch
from testutils import needs_fashion_mnist

from latentzoo.datamodules import FashionMNIST
from latentzoo.zoo import VAE

pytestmark = needs_fashion_mnist


def test_short_vae_run_learns_and_beats_the_mean_image(tmp_path) -> None:
    data = FashionMNIST(data_dir=str(tmp_path), batch_size=128, val_size=1000)
    model = VAE(data_shape=data.data_shape, latent_dim=16, likelihood="bernoulli", width=16)
    trainer = L.Trainer(
        max_steps=300, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=4,
        val_check_interval=300, num_sanity_val_steps=0, default_root_dir=tmp_path,
    )  # fmt: skip
    before = trainer.validate(model, datamodule=data, verbose=False)[0]["val/loss"]
    trainer.fit(model, datamodule=data)
    after = trainer.validate(model, datamodule=data, verbose=False)[0]["val/loss"]
    assert after < 0.75 * before, (before, after)

    assert data.train_set is not None and data.val_set is not None
    mean_image = data.train_set.x.float().div(255).mean(0)  # (1, 28, 28)
    x = data.val_set.x[:1000].float().div(255)
    model.eval()
    with torch.no_grad():
        mse_model = (model.reconstruct(x) - x).pow(2).mean().item()
    mse_mean = (mean_image - x).pow(2).mean().item()
    assert mse_model < 0.6 * mse_mean, (mse_model, mse_mean)

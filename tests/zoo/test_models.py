"""Smoke checks run over every registered model (plugins included), as timm does."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from testutils import ALL_SHAPES

from latentzoo.datamodules import Synthetic
from latentzoo.zoo import AutoencoderModule, create_model, list_models


def _batch(shape: tuple[int, ...], n: int = 4) -> torch.Tensor:
    return torch.rand(n, *shape)  # in [0, 1]: valid for every likelihood


@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
@pytest.mark.parametrize("name", list_models())
def test_loss_backward_and_sample(name: str, shape: tuple[int, ...]) -> None:
    model = create_model(name, data_shape=shape, latent_dim=6)
    x = _batch(shape)
    losses = model.compute_losses(x)
    assert torch.isfinite(losses["loss"]), losses
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, "the loss reaches no parameter"
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        assert model.sample(5).shape == (5, *shape)
        z = model.encode(x)
        assert z.shape == (4, model.latent_dim)
        assert model.decode(z).shape == x.shape
        assert model.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("name", list_models())
def test_short_fit_changes_weights_and_logs_namespaced_losses(name: str, tmp_path) -> None:
    data = Synthetic(
        latent_dim=3, data_dim=16, num_train=256, num_test=64, val_size=64, batch_size=32
    )
    model = create_model(name, data_shape=data.data_shape, latent_dim=4)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    trainer = L.Trainer(
        fast_dev_run=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=data)
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no weight moved"
    logged = trainer.logged_metrics
    assert any(k.startswith("train/") for k in logged), logged
    assert all("/" in k for k in logged), f"un-namespaced keys: {sorted(logged)}"
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logged.values())


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_loads_by_class_alone(name: str, tmp_path) -> None:
    model = create_model(name, data_shape=(12,), latent_dim=3)
    data = Synthetic(
        latent_dim=2, data_dim=12, num_train=128, num_test=32, val_size=32, batch_size=32
    )
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=data)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = type(model).load_from_checkpoint(path)
    assert isinstance(loaded, AutoencoderModule)
    assert dict(loaded.hparams) == dict(model.hparams)
    x = torch.randn(5, 12)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), model.encode(x))


def test_every_step_the_logger_writes_holds_every_loss_term(tmp_path) -> None:
    data = Synthetic(latent_dim=2, data_dim=8, num_train=800, val_size=100, batch_size=50)
    model = create_model("BetaVAE", data_shape=(8,), latent_dim=2)
    trainer = L.Trainer(max_steps=9, logger=CSVLogger(tmp_path), log_every_n_steps=3,
                        enable_progress_bar=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(model, datamodule=data)
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    assert [int(r["step"]) for r in rows] == [2, 5, 8]
    for row in rows:
        for key in ("train/recon", "train/kl", "train/nelbo"):
            assert row[key] not in ("", None), (row["step"], key)

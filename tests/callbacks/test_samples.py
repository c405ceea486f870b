"""SampleImages: the pictures' content and shapes; logging to CSV (PNG files) and W&B offline."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import wandb
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from latentzoo.callbacks import HolesCallback, SampleImages
from latentzoo.datamodules import Synthetic
from latentzoo.zoo import VAE

KEYS = ("samples/grid", "samples/reconstructions", "samples/interpolations", "samples/traversals")


def test_traversals_change_one_dimension_per_row(tiny_images) -> None:
    model = VAE(data_shape=(1, 28, 28), latent_dim=3, width=4).eval()
    cb = SampleImages(steps=4)
    seen: list[torch.Tensor] = []
    model.decode = lambda z: (seen.append(z), torch.zeros(len(z), 1, 28, 28))[1]  # type: ignore
    tiny_images.setup("fit")
    x = tiny_images.val_set.x[:1].float() / 255
    cb._traversals(model, x)
    codes = seen[0].unflatten(0, (3, 4))  # (dims, steps, d)
    base = model.encode(x)[0]
    for j in range(3):
        torch.testing.assert_close(codes[j, :, j], torch.linspace(-3, 3, 4))
        others = [k for k in range(3) if k != j]
        torch.testing.assert_close(codes[j][:, others], base[others].expand(4, -1))


def test_csv_logger_gets_png_files(tiny_images, tmp_path: Path) -> None:
    model = VAE(data_shape=(1, 28, 28), latent_dim=2, width=4)
    trainer = L.Trainer(
        logger=CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[SampleImages(num_samples=9)],
    )
    trainer.test(model, tiny_images, verbose=False)
    folder = Path(trainer.logger.log_dir) / "images"
    assert sorted(p.name.rsplit("_step", 1)[0] for p in folder.glob("*.png")) == sorted(
        k.replace("/", "_") for k in KEYS
    )


def test_vector_data_is_refused_at_setup() -> None:
    trainer = L.Trainer(logger=False, enable_progress_bar=False, callbacks=[SampleImages()])
    with pytest.raises(ValueError, match="SampleImages draws images"):
        trainer.test(
            VAE(data_shape=(6,), latent_dim=2),
            Synthetic(data_dim=6, num_train=300, val_size=100),
            verbose=False,
        )


def test_wandb_offline_run_holds_scalars_and_images(
    tiny_images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    logger = WandbLogger(save_dir=str(tmp_path), project="latentzoo-test", offline=True)
    model = VAE(data_shape=(1, 28, 28), latent_dim=2, width=4)
    cbs = [SampleImages(num_samples=4), HolesCallback(num_prior=100, num_reference=20)]
    trainer = L.Trainer(
        logger=logger, enable_progress_bar=False, enable_model_summary=False, callbacks=cbs
    )
    trainer.test(model, tiny_images, verbose=False)
    logger.experiment.finish()
    wandb.teardown()  # stops the background service, which writes the run file as it exits
    runs = list(tmp_path.glob("wandb/offline-run-*"))
    assert len(runs) == 1
    media = runs[0] / "files" / "media" / "images"
    for key in (*KEYS, "holes/latents"):  # W&B stores image <key> as media/images/<key>_<n>_<hash>
        assert list(media.glob(f"{key}_*.png")), key
    history = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
    for key in ("test/holes", "test/kl_prior_agg", "test/loss", *KEYS):
        assert key.encode() in history, key

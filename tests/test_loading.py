"""``latentzoo.load`` and ``load_from_checkpoint``: any zoo checkpoint, by the class it holds."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

import latentzoo
from latentzoo.datamodules import Synthetic
from latentzoo.loading import CheckpointMismatchError
from latentzoo.zoo import VAE, WAEGP, AutoencoderModule, create_model, list_models, registry

TINY = {"data_shape": (12,), "latent_dim": 3, "width": 4}
EXTRA = {"TwoStageVAE": {"stage1_epochs": 1, "stage2_epochs": 1, "stage2_width": 4}}
ZOO = list_models()


def save_checkpoint(name: str, folder: Path, record_class: bool = True) -> Path:
    """A checkpoint of the zoo model ``name`` after two training steps on tiny synthetic data.

    ``record_class=False`` writes it as code before the class key did: without that key.
    """
    torch.manual_seed(0)
    model = create_model(name, **TINY, **EXTRA.get(name, {}))
    data = Synthetic(latent_dim=2, data_dim=12, hidden=8, num_train=48, num_test=16,
                     val_size=16, batch_size=16)  # fmt: skip
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=folder)  # fmt: skip
    trainer.fit(model, datamodule=data)
    path = folder / f"{name}.ckpt"
    trainer.save_checkpoint(path)
    if not record_class:
        checkpoint = torch.load(path, weights_only=True)
        del checkpoint[AutoencoderModule.CHECKPOINT_CLASS_KEY]
        torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ckpts")
    return {name: save_checkpoint(name, folder) for name in ZOO}


@pytest.mark.parametrize("name", ZOO)
def test_load_builds_the_class_the_checkpoint_holds(name: str, checkpoints) -> None:
    path = checkpoints[name]
    model = latentzoo.load(path)
    saved = torch.load(path, weights_only=True)
    assert type(model).__name__ == name
    assert saved[AutoencoderModule.CHECKPOINT_CLASS_KEY].endswith(f".{name}")
    for key, value in saved["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.latent_dim == 3 and model.data_shape == (12,)
    assert type(AutoencoderModule.load_from_checkpoint(path)) is type(model)


@pytest.mark.parametrize("name", ZOO)
def test_a_checkpoint_without_the_class_key_is_known_by_its_hyperparameters(
    name: str, tmp_path: Path
) -> None:
    path = save_checkpoint(name, tmp_path, record_class=False)
    assert AutoencoderModule.CHECKPOINT_CLASS_KEY not in torch.load(path, weights_only=True)
    assert type(latentzoo.load(path)).__name__ == name


def test_a_model_class_refuses_another_class_checkpoint_and_says_which(checkpoints) -> None:
    with pytest.raises(CheckpointMismatchError, match=r"holds a WAEGP, not a VAE.*latentzoo\.load"):
        VAE.load_from_checkpoint(checkpoints["WAEGP"])
    assert type(WAEGP.load_from_checkpoint(checkpoints["WAEGP"])) is WAEGP


def test_a_subclass_checkpoint_loads_through_its_parent_class(checkpoints) -> None:
    assert type(VAE.load_from_checkpoint(checkpoints["BetaVAE"])).__name__ == "BetaVAE"


def test_an_old_checkpoint_that_fits_two_classes_asks_for_the_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class PlainVAE(VAE):
        """A plugin's VAE with the same arguments and weights: the file cannot tell them apart."""

    path = save_checkpoint("VAE", tmp_path, record_class=False)
    monkeypatch.setattr(registry.MODELS, "_entries", {**dict(registry.MODELS.items()),
                                                      "PlainVAE": PlainVAE})  # fmt: skip
    with pytest.raises(ValueError, match=r"PlainVAE, VAE.*latentzoo\.load\(path, cls="):
        latentzoo.load(path)
    assert type(latentzoo.load(path, cls=VAE)) is VAE
    assert type(VAE.load_from_checkpoint(path)) is VAE


def test_overrides_replace_saved_hyperparameters(checkpoints) -> None:
    model = latentzoo.load(checkpoints["VAE"], lr=0.5)
    assert model.lr == 0.5 and model.hparams["lr"] == 0.5


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint file at"):
        latentzoo.load(tmp_path / "nope.ckpt")

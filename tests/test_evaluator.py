"""``latentzoo evaluator fit``: trains, reports test accuracy, saves a checkpoint that the FID
extractor and DiversityCallback load; DiversityCallback's numbers match its definition."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from testutils import needs_fashion_mnist

from latentzoo.callbacks import DiversityCallback
from latentzoo.callbacks.batches import generated_batches
from latentzoo.cli import main
from latentzoo.datamodules import FashionMNIST
from latentzoo.metrics.diversity import collision_entropy
from latentzoo.metrics.extractors import DomainFeatures
from latentzoo.zoo import VAE


@needs_fashion_mnist
def test_evaluator_cli_and_diversity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "fmnist.ckpt"
    main(
        [
            "evaluator",
            "fit",
            "--data",
            "FashionMNIST",
            "--data.batch_size",
            "64",
            "--model.width",
            "8",
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "5",
            "--trainer.limit_val_batches",
            "1",
            "--trainer.limit_test_batches",
            "3",
            "--trainer.enable_progress_bar",
            "false",
            "--save_path",
            str(ckpt),
        ]
    )
    assert "domain evaluator: test accuracy" in capsys.readouterr().out
    features = DomainFeatures(str(ckpt), (1, 28, 28))
    assert features.num_features == 128 and features.num_classes == 10

    torch.manual_seed(0)
    model = VAE(data_shape=(1, 28, 28), latent_dim=2, width=4)
    cb = DiversityCallback(str(ckpt), num_samples=64, batch_size=32, latent_distance_samples=50)
    trainer = L.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_test_batches=1,
        callbacks=[cb],
    )
    trainer.test(model, FashionMNIST(val_size=10, batch_size=8), verbose=False)
    labels = torch.cat([features.predict(x) for x in generated_batches(model, 64, 32, 0, True)])
    counts = torch.bincount(labels, minlength=10).double()
    h2 = float(collision_entropy(counts))
    assert float(trainer.callback_metrics["test/h2"]) == pytest.approx(h2, rel=1e-6)
    assert float(trainer.callback_metrics["test/classes_covered"]) == int((counts > 0).sum())
    bound = math.log(4 * math.pi * h2) / math.sqrt(2 * h2) if h2 > 0 else math.inf
    assert float(trainer.callback_metrics["test/distance_bound"]) == pytest.approx(bound)
    assert float(trainer.callback_metrics["test/latent_distance"]) > 0


def test_missing_evaluator_checkpoint_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="latentzoo evaluator fit"):
        DomainFeatures(str(tmp_path / "none.ckpt"))

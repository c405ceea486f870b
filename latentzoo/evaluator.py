"""Domain evaluator: a small classifier of a data set, for "domain FID" and sample diversity.

Inception features are trained on ImageNet photos; on 28x28 grey-scale clothes or digits they are
a poor and slow yardstick, and on machines without the weights they are missing altogether. A
classifier trained on the data set itself gives features that know the domain (its penultimate
layer feeds FID, as in the "FID with a domain network" practice of e.g. the MNIST-FID literature)
and labels for the class-diversity metric (:mod:`latentzoo.metrics.diversity`).

    latentzoo evaluator fit --data FashionMNIST --trainer.max_epochs 3
    latentzoo evaluator fit --data FashionMNIST --save_path evaluators/fmnist.ckpt

It trains with the datamodule's training split, reports accuracy on its test split (logged as
``test/acc`` and printed), and saves a checkpoint that
:meth:`DomainClassifier.load_from_checkpoint` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.metrics.extractors import FeatureExtractor
from latentzoo.zoo import nets

__all__ = ["DomainClassifier", "DomainFeatures", "EvaluatorCLI", "evaluator_command"]


class DomainClassifier(L.LightningModule):
    """Encoder net (the zoo's, sized from the data) -> ``feature_dim`` -> LeakyReLU -> classes.

    Args:
        data_shape: Shape of one sample; linked from the datamodule by the CLI.
        num_classes: Number of classes (10 for MNIST, Fashion-MNIST, CIFAR-10).
        feature_dim: Size of the penultimate layer, the features of domain FID.
        width: Size of the encoder net (see :class:`~latentzoo.zoo.base.AutoencoderModule`).
        lr: Adam's learning rate.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        feature_dim: int = 128,
        width: int = 32,
        lr: float = 1e-3,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.save_hyperparameters()
        self.data_shape = nets.check_data_shape(data_shape)
        self.num_classes = num_classes
        self.lr = lr
        self.body = nets.build_encoder(self.data_shape, feature_dim, width)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features, (B, feature_dim)."""
        return self.body(x)

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, K) logits

    def _step(self, batch: Any, stage: str) -> Tensor:
        x, y = batch
        if y.dtype not in (torch.int64, torch.int32, torch.uint8) or y.ndim != 1:
            raise ValueError(
                f"the evaluator needs class labels y of shape (B,), got {y.dtype} "
                f"{tuple(y.shape)}; "
                "the datamodule has no classes (the synthetic set's y is a latent code)"
            )
        if int(y.max()) >= self.num_classes:
            raise ValueError(f"label {int(y.max())} >= num_classes={self.num_classes}")
        logits = self(x)
        loss = F.cross_entropy(logits, y.long())
        acc = (logits.argmax(1) == y).float().mean()
        on_step = stage == "train"
        self.log(
            f"{stage}/loss", loss, on_step=on_step, on_epoch=not on_step, sync_dist=not on_step
        )
        self.log(
            f"{stage}/acc",
            acc,
            prog_bar=True,
            on_step=on_step,
            on_epoch=not on_step,
            sync_dist=not on_step,
            batch_size=len(x),
        )
        return loss

    @override
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    @override
    def test_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    @override
    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class DomainFeatures(FeatureExtractor):
    """Penultimate features of a saved :class:`DomainClassifier`; also its predicted classes.

    Args:
        checkpoint: Path written by ``latentzoo evaluator fit``.
        data_shape: Shape the inputs must have; must match the classifier's.
    """

    def __init__(self, checkpoint: str, data_shape: tuple[int, ...] | None = None) -> None:
        super().__init__(data_shape)
        from pathlib import Path

        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"domain evaluator checkpoint {path} does not exist; train one with "
                "`latentzoo evaluator fit --data <DataModule> --save_path " + str(path) + "`"
            )
        self.net = DomainClassifier.load_from_checkpoint(path, map_location="cpu")
        self.net.requires_grad_(False).eval()
        if data_shape is not None and tuple(data_shape) != self.net.data_shape:
            raise ValueError(
                f"the evaluator {path} was trained on data of shape {self.net.data_shape}, "
                f"not {tuple(data_shape)}"
            )
        self.num_features = int(self.net.hparams["feature_dim"])
        self.num_classes = self.net.num_classes
        self.source = f"domain:{path.resolve()}:{int(path.stat().st_mtime)}"

    def forward(self, x: Tensor) -> Tensor:
        self.check(x)
        return self.net.features(x)

    def predict(self, x: Tensor) -> Tensor:
        """Predicted classes, (B,)."""
        self.check(x)
        return self.net(x).argmax(1)


class EvaluatorCLI(LightningCLI):
    """Fits a :class:`DomainClassifier`, tests it, and saves it to ``--save_path``."""

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.data_shape", "model.data_shape", apply_on="instantiate")
        parser.add_argument(
            "--save_path",
            type=str | None,
            default=None,
            help="Checkpoint to write (default: evaluators/<DataModule>.ckpt)",
        )

    def after_fit(self) -> None:
        config = self.config[self.subcommand]
        save_path = config.save_path or f"evaluators/{type(self.datamodule).__name__}.ckpt"
        results = self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        self.trainer.save_checkpoint(save_path)
        if self.trainer.is_global_zero:
            acc = results[0]["test/acc"] if results else float("nan")
            print(f"domain evaluator: test accuracy {acc:.4f}; saved to {save_path}")


def evaluator_command(argv: Sequence[str]) -> None:
    """``latentzoo evaluator fit --data FashionMNIST ...``: train and save a domain evaluator."""
    EvaluatorCLI(
        DomainClassifier,
        InMemoryDataModule,
        subclass_mode_data=True,
        trainer_defaults={"max_epochs": 3, "logger": False, "enable_checkpointing": False},
        save_config_callback=None,
        args=list(argv),
    )

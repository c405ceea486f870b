"""The domain classifier: a small net trained on a data set's labels, for domain FID and diversity.

Inception features are trained on ImageNet photos; on 28x28 grey-scale clothes or digits they are
a poor and slow yardstick, and on machines without the weights they are missing altogether. A
classifier trained on the data set itself gives features that know the domain (its penultimate
layer feeds FID, as in the "FID with a domain network" practice of e.g. the MNIST-FID literature)
and labels for the class-diversity metric (:mod:`latentzoo.metrics.diversity`).

``latentzoo evaluator fit --data FashionMNIST`` trains one (see :mod:`latentzoo.cli`);
:class:`~latentzoo.metrics.extractors.DomainFeatures` loads its checkpoint for the callbacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.zoo import nets

__all__ = ["DomainClassifier"]


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
        # Its accuracy on the test split, measured after fit (``latentzoo evaluator fit``) and
        # kept in the checkpoint: it bounds what its FID and diversity can see.
        self.test_accuracy: float | None = None

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

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["test_accuracy"] = self.test_accuracy

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.test_accuracy = checkpoint.get("test_accuracy")

"""Tiny in-memory data for the VAE-GAN, 2-stage VAE and latent-sampler tests."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from latentzoo.datamodules import InMemoryDataModule

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


class TinyImages(InMemoryDataModule):
    """``n`` random uint8 28x28 images (blobs, so the nets have something to fit)."""

    def __init__(self, n: int = 96, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, val_size=16, seed=seed)
        self.n = n

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        gen = torch.Generator().manual_seed(int(train))
        centre = torch.randint(6, 22, (self.n, 2, 1, 1), generator=gen).float()
        grid = torch.stack(torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij"))
        blob = torch.exp(-((grid - centre) ** 2).sum(1) / 20)  # (n, 28, 28)
        return (blob * 255).to(torch.uint8).unsqueeze(1), torch.zeros(self.n, dtype=torch.long)


def trainer(**kwargs: object) -> L.Trainer:
    defaults: dict[str, object] = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 1,
    }
    return L.Trainer(**{**defaults, **kwargs})  # type: ignore[arg-type]


def snapshot(module: torch.nn.Module) -> dict[str, Tensor]:
    """A copy of every parameter and buffer."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, Tensor], after: dict[str, Tensor]) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}

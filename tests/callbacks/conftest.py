"""A tiny image datamodule (random uint8 images with labels) for the callback tests."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from latentzoo.datamodules import InMemoryDataModule


class TinyImages(InMemoryDataModule):
    """Random 1x28x28 uint8 images, 10 classes, from a fixed seed; no files."""

    def __init__(self, n: int = 96, batch_size: int = 32, val_size: int = 32) -> None:
        super().__init__(batch_size=batch_size, val_size=val_size)
        self.n = n

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        gen = torch.Generator().manual_seed(0 if train else 1)
        x = torch.randint(0, 256, (self.n, 1, 28, 28), generator=gen, dtype=torch.uint8)
        return x, torch.randint(0, 10, (self.n,), generator=gen)


@pytest.fixture
def tiny_images() -> TinyImages:
    return TinyImages()

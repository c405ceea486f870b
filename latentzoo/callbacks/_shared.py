"""Helpers shared by the evaluation callbacks: rank shards, seeded sampling, data-set access."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import lightning as L
import torch
from torch import Tensor

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.zoo import AutoencoderModule

__all__ = ["Split", "as_float", "check_model", "dataset_tensors", "generated_batches", "rank_share"]

Split = Literal["train", "val", "test"]


def rank_share(n: int, trainer: L.Trainer) -> range:
    """The indices of ``range(n)`` this rank handles: every ``world_size``-th from its rank."""
    return range(trainer.global_rank, n, trainer.world_size)


def check_model(pl_module: L.LightningModule, callback: object) -> AutoencoderModule:
    if not isinstance(pl_module, AutoencoderModule):
        raise TypeError(
            f"{type(callback).__name__} measures latentzoo models (AutoencoderModule subclasses), "
            f"got {type(pl_module).__name__}"
        )
    return pl_module


def dataset_tensors(trainer: L.Trainer, split: Split) -> tuple[Tensor, Tensor]:
    """The ``(x, y)`` tensors of one split of the trainer's datamodule (set up here if needed)."""
    dm = trainer.datamodule
    if not isinstance(dm, InMemoryDataModule):
        raise TypeError(
            "the evaluation callbacks read real data from a latentzoo datamodule; pass one with "
            f"trainer.fit(model, datamodule=...), got {type(dm).__name__}"
        )
    attr = f"{split}_set"
    if getattr(dm, attr) is None:
        dm.setup("test" if split == "test" else "fit")
    ds = getattr(dm, attr)
    return ds.x, ds.y


def as_float(x: Tensor, device: torch.device) -> Tensor:
    """A batch as the models see it: uint8 images become floats in [0, 1] on ``device``."""
    x = x.to(device)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


@torch.no_grad()
def generated_batches(
    model: AutoencoderModule, n: int, batch_size: int, seed: int, clamp: bool
) -> Iterator[Tensor]:
    """``n`` samples from ``model.sample`` in batches, from a seeded RNG that leaves training's alone.

    Args:
        clamp: Clip to [0, 1], as any image written to disk is (Gaussian decoders' means are not
            bounded); vectors are left as they are.
    """
    devices = [model.device] if model.device.type == "cuda" else []
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for start in range(0, n, batch_size):
                x = model.sample(min(batch_size, n - start))
                yield x.clamp(0, 1) if clamp else x
    finally:
        model.train(was_training)

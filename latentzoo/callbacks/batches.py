"""What an evaluation reads: this rank's share of a split's tensors, and seeded model samples.

Both are split over DDP ranks the same way (:func:`rank_share`), so a metric that torchmetrics
gathers in rank order sees its inputs in the order one process would, and order-dependent
statistics (KID's random subsets, the holes metric's reference subset) agree exactly across
process counts. :class:`~latentzoo.callbacks.PeriodicEvaluation` wraps these with progress bars.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import lightning as L
import torch
from torch import Tensor

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.datamodules.base import to_model_input
from latentzoo.zoo import AutoencoderModule

__all__ = [
    "Split",
    "datamodule_of",
    "dataset_tensors",
    "generated_batches",
    "rank_share",
    "split_batches",
]

Split = Literal["train", "val", "test"]


def rank_share(n: int, trainer: L.Trainer | None) -> range:
    """The contiguous block of ``range(n)`` this rank handles (blocks in rank order).

    Rank order matters: torchmetrics concatenates gathered states in rank order, so the blocks
    come back in the order of one process.
    """
    rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
    return range(rank * n // world, (rank + 1) * n // world)


def datamodule_of(trainer: L.Trainer) -> InMemoryDataModule:
    """The trainer's latentzoo datamodule, or a TypeError that says how to pass one."""
    dm = getattr(trainer, "datamodule", None)
    if not isinstance(dm, InMemoryDataModule):
        raise TypeError(
            "the evaluation callbacks read real data from a latentzoo datamodule; pass one with "
            f"trainer.fit(model, datamodule=...), got {type(dm).__name__}"
        )
    return dm


def dataset_tensors(trainer: L.Trainer, split: Split) -> tuple[Tensor, Tensor]:
    """The ``(x, y)`` tensors of one split of the trainer's datamodule (set up here if needed)."""
    return datamodule_of(trainer).split_tensors(split)


def split_batches(
    trainer: L.Trainer, split: Split, n: int, batch_size: int, device: torch.device
) -> Iterator[Tensor]:
    """This rank's share of the first ``n`` samples of ``split`` (all if fewer), in batches, as
    the model sees them (:func:`~latentzoo.datamodules.base.to_model_input`, on ``device``)."""
    x_all, _ = dataset_tensors(trainer, split)
    share = rank_share(min(n, len(x_all)), trainer)
    for start in range(share.start, share.stop, batch_size):
        yield to_model_input(x_all[start : min(start + batch_size, share.stop)].to(device))


@torch.no_grad()
def generated_batches(
    model: AutoencoderModule,
    n: int,
    batch_size: int,
    seed: int,
    clamp: bool,
    trainer: L.Trainer | None = None,
) -> Iterator[Tensor]:
    """This rank's share of ``n`` samples of ``model.sample``; training's RNG state is left alone.

    Batch b of the ``ceil(n / batch_size)`` batches is drawn with seed ``seed + b``, and each rank
    draws a contiguous block of batches (:func:`rank_share`), so the samples and their order over
    ranks are the same for any number of processes (1 and 2 give the same FID on one model).

    Args:
        clamp: Clip to [0, 1], as any image written to disk is (Gaussian decoders' means are not
            bounded); vectors are left as they are.
        trainer: Gives the rank and world size; ``None`` yields all batches.
    """
    devices = [model.device] if model.device.type == "cuda" else []
    was_training = model.training
    model.eval()
    try:
        for b in rank_share(-(-n // batch_size), trainer):
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed + b)
                x = model.sample(min(batch_size, n - b * batch_size))
            yield x.clamp(0, 1) if clamp else x
    finally:
        model.train(was_training)

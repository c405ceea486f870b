"""Helpers shared by the evaluation callbacks: rank shards, seeded sampling, data-set access."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor
from typing_extensions import override

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.zoo import AutoencoderModule

__all__ = [
    "PeriodicEvaluation",
    "Split",
    "as_float",
    "check_model",
    "datamodule_of",
    "dataset_tensors",
    "generated_batches",
    "rank_share",
]

Split = Literal["train", "val", "test"]


def rank_share(n: int, trainer: L.Trainer | None) -> range:
    """The contiguous block of ``range(n)`` this rank handles.

    Blocks in rank order, so states gathered by torchmetrics (which concatenates in rank order)
    come out in the same order as in one process: order-dependent statistics (KID's random
    subsets, the holes metric's reference subset) then agree exactly across process counts.
    """
    rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
    return range(rank * n // world, (rank + 1) * n // world)


def check_model(pl_module: L.LightningModule, callback: object) -> AutoencoderModule:
    if not isinstance(pl_module, AutoencoderModule):
        raise TypeError(
            f"{type(callback).__name__} measures latentzoo models (AutoencoderModule subclasses), "
            f"got {type(pl_module).__name__}"
        )
    return pl_module


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
    dm = datamodule_of(trainer)
    attr = f"{split}_set"
    if getattr(dm, attr) is None:
        dm.setup("test" if split == "test" else "fit")
    ds = getattr(dm, attr)
    return ds.x, ds.y


class PeriodicEvaluation(Callback):
    """When an evaluation callback runs: during ``fit``, after every ``every_n_epochs``-th
    validation epoch (never in the sanity check); after every ``validate`` and ``test`` run.
    Subclasses say what it does."""

    every_n_epochs: int = 1

    def run_evaluation(self, trainer: L.Trainer, model: AutoencoderModule, stage: str) -> None:
        """Measure ``model`` and log under ``stage`` (``val`` or ``test``)."""
        raise NotImplementedError

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        off_epoch = (trainer.current_epoch + 1) % self.every_n_epochs != 0
        if trainer.sanity_checking or (trainer.state.fn == TrainerFn.FITTING and off_epoch):
            return
        self.run_evaluation(trainer, check_model(pl_module, self), "val")

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.run_evaluation(trainer, check_model(pl_module, self), "test")


def as_float(x: Tensor, device: torch.device) -> Tensor:
    """A batch as the models see it: uint8 images become floats in [0, 1] on ``device``."""
    x = x.to(device)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


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

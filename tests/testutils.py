"""Constants and helpers shared by test modules (``tests/`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.zoo.wae_gp import WAEGP

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")

IMAGE_SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64)]
ALL_SHAPES = [*IMAGE_SHAPES, (128,)]


class CrashAtStep(L.Callback):
    """Raises in the middle of training, as a crash would; usable in --trainer.callbacks."""

    def __init__(self, step: int = 3) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")


class KillAtStep(L.Callback):
    """SIGKILLs its own process in the middle of training step ``step``, after the forward pass."""

    def __init__(self, step: int = 3) -> None:
        self.step = step

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonAtStep(L.Callback):
    """Puts a NaN into the batch of training step ``step``, as corrupt data would."""

    def __init__(self, step: int = 3) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            batch[0][0].fill_(float("nan"))


class BlobImages(InMemoryDataModule):
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


def _changed(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}


def phase_changes(model: WAEGP, x: torch.Tensor) -> dict[str, set[str]]:
    """For each phase, the top-level modules whose parameters one step of its optimizer moved."""
    changes = {}
    for phase, opt in zip(model.phases(), model.configure_optimizers(), strict=True):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt.zero_grad()
        phase.loss(x)["loss"].backward()
        opt.step()
        if phase.after_step is not None:
            phase.after_step()
        changes[phase.name] = {n.split(".")[0] for n in _changed(model, before)}
    return changes


class LabelledNoise(InMemoryDataModule):
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

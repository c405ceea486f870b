"""Constants and helpers shared by test modules (``tests/`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

from pathlib import Path

import lightning as L

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

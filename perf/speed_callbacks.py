"""Two callbacks for timing ``latentzoo fit`` runs from the command line (``PYTHONPATH=perf``).

- :class:`Speed` sets the model's :class:`~latentzoo.zoo.speed.SpeedSettings` before Lightning
  applies them, so one config runs with and without the switches whatever their defaults::

      latentzoo fit --config cell.yaml --trainer.callbacks+=speed_callbacks.Speed \\
          --trainer.callbacks.channels_last=true --trainer.callbacks.optimizer=fused

- :class:`EpochTimes` prints each training epoch's wall time and steps, and the validation loss,
  one line an epoch (``epoch 0: 12.3 s, 550 steps, val/loss 123.4``), for the log to keep.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch

from latentzoo.zoo.speed import CompileMode, OptimizerKernel, SpeedSettings


class Speed(L.Callback):
    """``model.speed = SpeedSettings(channels_last, optimizer, compile)`` at set-up."""

    def __init__(
        self,
        channels_last: bool = False,
        optimizer: OptimizerKernel = "default",
        compile: CompileMode = "off",
    ) -> None:
        self.settings = SpeedSettings(channels_last, optimizer, compile)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.speed = self.settings  # before configure_model, which applies it


class EpochTimes(L.Callback):
    """One line per epoch: wall time (device-synchronized), steps, and ``val/loss``."""

    def __init__(self) -> None:
        self.start, self.step = 0.0, 0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(pl_module)
        self.start, self.step = time.perf_counter(), trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(pl_module)
        seconds = time.perf_counter() - self.start
        val: Any = trainer.callback_metrics.get("val/loss")
        shown = f"{float(val):.6g}" if val is not None else "n/a"
        print(f"epoch {trainer.current_epoch}: {seconds:.2f} s, "
              f"{trainer.global_step - self.step} steps, val/loss {shown}", flush=True)  # fmt: skip

"""``last.ckpt`` that is really the last state: saved on a clock, at every epoch end and on a crash.

Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only on steps where it also
saved a top-k checkpoint, so a run whose ``val/loss`` stopped improving kept a ``last.ckpt`` from
long before its end, and ``--ckpt_path last`` silently re-trained the rest. :class:`LastCheckpoint`
is independent of any best-k bookkeeping:

- it saves after every training epoch, every ``every_n_minutes`` of training (a few minutes by
  default: what a ``kill -9`` can cost at most) and, if set, every ``every_n_steps`` batches;
- it saves when training ends or is interrupted (Ctrl-C, SIGTERM, an exception), unless that
  state was already saved; after a SIGTERM it says what the file holds, for the command's last
  line. Under DDP a SIGTERM stop does not save: the ranks are stopped at different points, so
  the save's collectives would wait for each other forever; the file keeps its last save, made at
  an epoch end or on the clock. For the length of training it also puts the command's SIGTERM
  handler back in front of Lightning's (:func:`latentzoo.signals.take_precedence`);
- it never writes non-finite weights: a diverged run keeps the last finite ``last.ckpt``;
- it writes to a temporary file and renames it into place, so a kill during the write leaves the
  previous ``last.ckpt`` whole;
- its state holds the random number generators' states (torch, CUDA, numpy, Python), restored
  when training resumes, so together with the datamodule's resumable training order
  (:class:`~latentzoo.datamodules.sampler.ResumableSampler`) and Lightning's restoring of weights
  and optimizers, a run killed at any step and resumed from ``last.ckpt`` ends with the weights of
  the uninterrupted run. Under DDP the generators of rank 0 are saved and restored on every rank
  (offset by the rank), so resumed noise is reproducible but not that of the uninterrupted run.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from latentzoo.signals import Terminated, take_precedence

__all__ = ["LastCheckpoint", "capture_rng", "restore_rng", "weights_are_finite"]

LAST_NAME = "last.ckpt"


def capture_rng() -> dict[str, Any]:
    """The states of every generator a training step may draw from."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        # tensors and numbers only, so the checkpoint still loads with weights_only=True
        "numpy": (kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], offset: int = 0) -> None:
    """Put back what :func:`capture_rng` took; a non-zero ``offset`` reseeds torch from it."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if offset:
        torch.manual_seed(int(torch.randint(2**62, ())) + offset)


def weights_are_finite(module: torch.nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of ``module`` is finite."""
    tensors = [*module.parameters(), *module.buffers()]
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


class LastCheckpoint(Checkpoint):
    """Keep ``<dirpath>/last.ckpt`` the latest finite training state, saved often and atomically.

    Args:
        dirpath: Folder of ``last.ckpt``; None puts it where Lightning's ``ModelCheckpoint``
            puts its files (``<save_dir>/<name>/version_<N>/checkpoints`` of the first logger).
        every_n_minutes: Save when this much training time has passed since the last save
            (0: never on the clock).
        every_n_steps: Also save every this many training batches (0: off).
    """

    def __init__(
        self, dirpath: str | None = None, every_n_minutes: float = 5.0, every_n_steps: int = 0
    ) -> None:
        if every_n_minutes < 0 or every_n_steps < 0:
            raise ValueError(
                f"every_n_minutes and every_n_steps must be >= 0, got {every_n_minutes}, "
                f"{every_n_steps}"
            )
        self.dirpath = dirpath
        self.every_n_minutes = every_n_minutes
        self.every_n_steps = every_n_steps
        self.saved_step: int | None = None  # global step of the file on disk, this run
        self.saved_epoch: int | None = None  # the epoch it was saved in (0-based)
        self.saved_at_epoch_end = False
        self._last_save_time = time.monotonic()
        self._rng_to_restore: dict[str, Any] | None = None
        self._warned_nonfinite = False

    @property
    def path(self) -> Path | None:
        """Where ``last.ckpt`` is written, once the trainer has set the folder up."""
        return None if self.dirpath is None else Path(self.dirpath) / LAST_NAME

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = trainer.strategy.broadcast(_default_dirpath(trainer))

    # -- when to save -----------------------------------------------------------------------------
    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if idx + 1 >= trainer.num_training_batches:
            return  # the epoch-end save follows, after validation
        due = self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0
        if not due and self.every_n_minutes > 0:
            elapsed = time.monotonic() - self._last_save_time
            due = bool(trainer.strategy.broadcast(elapsed >= 60 * self.every_n_minutes))
        if due:
            self.save(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer, pl_module, epoch_end=True)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.saved_step != trainer.global_step:  # max_steps ended training mid-epoch
            self.save(trainer, pl_module)

    @override
    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # Under DDP only Ctrl-C reaches every rank (the terminal's whole process group); a save
        # after another exception, SIGTERM included, would wait forever at the barrier for ranks
        # that did not stop there.
        ctrl_c = isinstance(exception, KeyboardInterrupt) and not isinstance(exception, Terminated)
        collective_ok = trainer.world_size == 1 or ctrl_c
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking
        if fitting and collective_ok and self.saved_step != trainer.global_step:
            self.save(trainer, pl_module)
        if isinstance(exception, Terminated) and trainer.state.fn == "fit":
            exception.kept.append(self._resume_hint())

    # -- saving -----------------------------------------------------------------------------------
    def save(
        self, trainer: L.Trainer, pl_module: L.LightningModule, epoch_end: bool = False
    ) -> None:
        """Write ``last.ckpt`` unless weights are not finite; every rank calls, rank 0 writes."""
        if getattr(trainer, "fast_dev_run", False) or trainer.sanity_checking or not self.path:
            return
        if not weights_are_finite(pl_module):  # identical on every rank under DDP
            if not self._warned_nonfinite:
                rank_zero_warn(
                    f"step {trainer.global_step}: the weights are not finite; last.ckpt keeps "
                    f"the state of step {self.saved_step}"
                )
                self._warned_nonfinite = True
            return
        tmp = self.path.with_name(f".{LAST_NAME}.part")
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)  # atomic: a kill leaves the old file or the new one
        trainer.strategy.barrier("latentzoo_last_checkpoint")
        self.saved_step, self.saved_epoch = trainer.global_step, trainer.current_epoch
        self.saved_at_epoch_end = epoch_end
        self._last_save_time = time.monotonic()

    def _resume_hint(self) -> str:
        if self.saved_step is None:
            return "this run has not written last.ckpt yet"
        return (
            f"{self.path} holds {self.describe_saved()}; resume with the same command and "
            f"--ckpt_path last"
        )

    def describe_saved(self) -> str:
        """What the file on disk holds, e.g. ``step 12, end of epoch 1`` (epochs from 0)."""
        if self.saved_step is None:
            return "not written by this run"
        where = "end of" if self.saved_at_epoch_end else "during"
        return f"step {self.saved_step}, {where} epoch {self.saved_epoch}"

    # -- the generators' states -------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        return {"rng": capture_rng()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng_to_restore = state_dict.get("rng")

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        take_precedence()  # over Lightning's handler, installed since setup
        # Here, not in load_state_dict: the sanity check between the two draws random numbers.
        if self._rng_to_restore is not None:
            restore_rng(self._rng_to_restore, offset=trainer.global_rank)
            self._rng_to_restore = None
        self._last_save_time = time.monotonic()


def _default_dirpath(trainer: L.Trainer) -> str:
    """The folder Lightning's ModelCheckpoint uses: the first logger's version folder."""
    if not trainer.loggers:
        return os.path.join(trainer.default_root_dir, "checkpoints")
    logger = trainer.loggers[0]
    save_dir = logger.save_dir or trainer.default_root_dir
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return os.path.join(save_dir, str(logger.name), version, "checkpoints")

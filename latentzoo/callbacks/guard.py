"""Stop a diverging run at its first non-finite loss, before the step that would spoil the weights.

Without it a run with ``--model.lr 1e6`` went NaN within a few steps, trained three epochs on NaN
and exited 0 with ``val/loss nan`` in its summary. :class:`FiniteLossGuard` looks at every loss
that is about to be backpropagated (each optimizer's, for adversarial models) and raises
:class:`NonFiniteLossError` on the first that is NaN, infinite, or beyond ``loss_limit`` in size
(a loss of 1e26, as ``--model.decoder_sigma 1e-12`` gives, is finite but nothing can learn from
it in float32). The message names the step and the terms that went bad, and what to try; the CLI
prints it as one line and exits with status 1. Because it fires before ``backward``, the weights
are still those of the last good step, and :class:`~latentzoo.callbacks.LastCheckpoint` saves them
as ``last.ckpt``.

Under DDP the decision is taken jointly (one all-reduce of a flag per backward), so every rank
stops at the same step instead of the healthy ones waiting forever for the failed one.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor
from typing_extensions import override

__all__ = ["FiniteLossGuard", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """A training loss was NaN, infinite or beyond the guard's limit; the message says where."""


class FiniteLossGuard(L.Callback):
    """Raise :class:`NonFiniteLossError` at the first loss that is not finite or too large.

    Args:
        loss_limit: A loss whose absolute value exceeds this counts as diverged (float32 holds
            up to 3e38; a batch-mean loss above 1e20 leaves no precision for the gradients).
    """

    def __init__(self, loss_limit: float = 1e20) -> None:
        if not loss_limit > 0:
            raise ValueError(f"loss_limit must be > 0, got {loss_limit}")
        self.loss_limit = loss_limit
        self._batch: Any = None

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch = batch  # a reference, kept to name the bad terms if the loss goes bad

    @override
    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor
    ) -> None:
        value = loss.detach()
        bad = not bool((value.abs() <= self.loss_limit).all())  # NaN compares False: one sync
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            raise NonFiniteLossError(self.describe(trainer, pl_module, value))

    def describe(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> str:
        """One line: the step, the bad terms, what the checkpoint holds and what to try."""
        terms = self._bad_terms(pl_module)
        shown = float(loss.float().flatten()[0]) if loss.numel() else math.nan
        which = f" ({', '.join(terms)})" if terms else ""
        return (
            f"training stopped at step {trainer.global_step} (epoch {trainer.current_epoch}): the "
            f"loss is {shown:.3g}{which}, not finite or beyond {self.loss_limit:.0e}; last.ckpt "
            f"holds the last finite weights. Try a lower --model.lr, a larger "
            f"--model.decoder_sigma, or check the data for NaN/inf"
        )

    @torch.no_grad()
    def _bad_terms(self, pl_module: L.LightningModule) -> list[str]:
        """The loss terms of the failing batch that are not finite or too large, with values."""
        compute = getattr(pl_module, "compute_losses", None)
        if compute is None or self._batch is None:
            return []
        try:
            terms = compute(self._batch[0])
        except Exception:  # naming the terms is a courtesy; the stop must not fail on it
            return []
        return [
            f"{name}={float(t):.3g}"
            for name, t in terms.items()
            if name != "loss"
            and t.numel() == 1
            and (not torch.isfinite(t) or abs(float(t)) > self.loss_limit)
        ]

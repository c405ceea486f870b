"""The template of every evaluation callback: when it runs, what it reads, where its numbers go.

A subclass says what it measures in :meth:`PeriodicEvaluation.evaluate` and returns the numbers;
this class does the rest:

- **when**: during ``fit``, after every ``every_n_epochs``-th validation epoch (never in the sanity
  check), and once more at the end of ``fit`` when the last evaluation was not at the final step
  (``max_epochs`` not a multiple of the period, ``max_steps`` stopping mid-epoch, early stopping,
  no validation at all), so every run ends with its metrics (not after a ``fast_dev_run``, which
  only checks that training runs); after every ``validate`` and ``test``. The model is in eval
  mode and no gradient is taken.
- **what it reads**: :meth:`~PeriodicEvaluation.real_batches` (this rank's share of a split, as
  floats by the datamodule's one rule) and :meth:`~PeriodicEvaluation.sample_batches` (seeded,
  rank-sharded ``model.sample``), both with a progress bar on rank 0 when they last more than a
  couple of seconds and the trainer shows one.
- **where the numbers go**, in one place: ``{stage}/{key}`` into ``trainer.callback_metrics`` on
  every rank (checkpoint monitors, early stopping, ``trainer.test``'s results, the CLI's summary);
  and on rank 0, at once, to every logger (flushed) and, when there is one, into
  ``<log_dir>/metrics_<stage>_step<N>.json``. A Ctrl-C or SIGTERM during a slow evaluation
  therefore keeps every number the callbacks before it had computed. Through the CLI, SIGTERM
  raises at once (:mod:`latentzoo.signals`); under a plain ``Trainer`` Lightning only notes it,
  and the batches stop at the next one, as its own loops do.

Under DDP :meth:`evaluate` runs on every rank and may call collectives (a metric's ``compute``);
logger, file and picture work (:meth:`rank_zero_media`) runs on rank 0 and calls none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, TypeVar

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor
from tqdm.auto import tqdm
from typing_extensions import override

from latentzoo.callbacks.batches import Split, generated_batches, rank_share, split_batches
from latentzoo.callbacks.log_media import run_dir
from latentzoo.signals import take_precedence
from latentzoo.zoo import AutoencoderModule

__all__ = ["PeriodicEvaluation", "Stage"]

Stage = Literal["val", "test"]
T = TypeVar("T")

PROGRESS_DELAY_S = 2.0  # a bar appears only for evaluations longer than this


class PeriodicEvaluation(Callback):
    """Base of the evaluation callbacks; see the module docstring for what it owns.

    Args:
        every_n_epochs: Evaluate after every k-th validation epoch of ``fit`` (and at its end).
    """

    def __init__(self, every_n_epochs: int = 1) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self._evaluated_at: int | None = None  # global step of the last evaluation in this fit

    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> Mapping[str, Tensor | float]:
        """Measure ``model`` (every rank; collectives allowed); keys get the ``stage/`` prefix.

        ``stage`` is ``val`` during ``fit`` and ``validate``, ``test`` in ``test``: it says which
        held-out split a callback that reads one should use.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement evaluate()")

    def rank_zero_media(self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage) -> None:
        """Pictures or files made after :meth:`evaluate`; rank 0 only, so no collective here."""

    # -- when ---------------------------------------------------------------------------------
    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._evaluated_at = None

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        off_epoch = (trainer.current_epoch + 1) % self.every_n_epochs != 0
        if trainer.sanity_checking or (trainer.state.fn == TrainerFn.FITTING and off_epoch):
            return
        self.run_evaluation(trainer, pl_module, "val")

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.run_evaluation(trainer, pl_module, "test")

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Still on the training device with the process group up (teardown comes later); every
        # rank gets here, so collectives are safe. LightningModule.log is not allowed here.
        # fast_dev_run checks that training runs: no full evaluation (10,000 samples) after it.
        if self._evaluated_at != trainer.global_step and not getattr(trainer, "fast_dev_run", 0):
            self.run_evaluation(trainer, pl_module, "val", in_loop=False)

    # -- what it reads ------------------------------------------------------------------------
    def real_batches(
        self, trainer: L.Trainer, model: AutoencoderModule, split: Split, n: int, batch_size: int
    ) -> Iterator[Tensor]:
        """This rank's share of the first ``n`` samples of ``split``, as floats on the model's
        device (:func:`~latentzoo.callbacks.batches.split_batches`)."""
        batches = split_batches(trainer, split, n, batch_size, model.device)
        return self.progress(trainer, batches, f"{split} data")

    def sample_batches(
        self,
        trainer: L.Trainer,
        model: AutoencoderModule,
        n: int,
        batch_size: int,
        seed: int,
        clamp: bool,
    ) -> Iterator[Tensor]:
        """This rank's share of ``n`` seeded samples
        (:func:`~latentzoo.callbacks.batches.generated_batches`)."""
        total = len(rank_share(-(-n // batch_size), trainer))
        batches = generated_batches(model, n, batch_size, seed, clamp, trainer)
        return self.progress(trainer, batches, "samples", total)

    def progress(
        self, trainer: L.Trainer, items: Iterable[T], what: str, total: int | None = None
    ) -> Iterator[T]:
        """``items`` with a tqdm bar on rank 0, shown after two seconds, unless the trainer has
        its progress bar disabled; stopped between two items once the trainer got a SIGTERM."""
        hidden = not trainer.is_global_zero or trainer.progress_bar_callback is None
        desc = f"{type(self).__name__}: {what}"
        for item in tqdm(
            items, desc=desc, total=total, leave=False, disable=hidden, delay=PROGRESS_DELAY_S
        ):
            if trainer.received_sigterm:  # set by Lightning's handler, read as its loops do
                raise SIGTERMException
            yield item

    # -- where the numbers go -----------------------------------------------------------------
    def check_model(self, pl_module: L.LightningModule) -> AutoencoderModule:
        """``pl_module`` if it is a latentzoo model, else a TypeError naming this callback."""
        if not isinstance(pl_module, AutoencoderModule):
            raise TypeError(
                f"{type(self).__name__} measures latentzoo models (AutoencoderModule "
                f"subclasses), got {type(pl_module).__name__}"
            )
        return pl_module

    def run_evaluation(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: Stage, in_loop: bool = True
    ) -> dict[str, float]:
        """Evaluate, publish the values, make the media; returns ``{"stage/key": value}``.

        Args:
            in_loop: Called from a validation/test epoch-end hook, where ``LightningModule.log``
                is allowed; otherwise (``on_train_end``) ``callback_metrics`` is written directly.
        """
        model = self.check_model(pl_module)
        take_precedence()  # a SIGTERM stops the evaluation at once, DDP included
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                raw = self.evaluate(trainer, model, stage)
                values = {f"{stage}/{k}": float(v) for k, v in raw.items()}
                self._evaluated_at = trainer.global_step
                self._publish(trainer, model, values, in_loop)
                if trainer.is_global_zero:
                    self.rank_zero_media(trainer, model, stage)
        finally:
            model.train(was_training)
        return values

    def _publish(
        self, trainer: L.Trainer, model: AutoencoderModule, values: dict[str, float], in_loop: bool
    ) -> None:
        if in_loop:  # the values are the same on every rank: nothing to reduce
            for key, value in values.items():
                model.log(key, value, logger=False, sync_dist=False)
        else:
            trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})
        if values and trainer.is_global_zero:
            self._record(trainer, values)

    def _record(self, trainer: L.Trainer, values: dict[str, float]) -> None:
        """Rank 0: to every logger, flushed, and merged into this step's JSON file in the run's
        folder (a run without a logger keeps no files: ``trainer.test`` from a script with
        ``logger=False`` leaves nothing behind)."""
        step = trainer.global_step
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
            logger.save()
        if not trainer.loggers:
            return
        stage = next(iter(values)).split("/", 1)[0]
        path = run_dir(trainer) / f"metrics_{stage}_step{step}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = json.loads(path.read_text()) if path.is_file() else {}
        merged.update(values)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=1, sort_keys=True))
        tmp.replace(path)  # atomic: an interrupt leaves the old file or the new one

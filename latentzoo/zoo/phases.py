"""The one engine for multi-optimizer training: a model declares phases, the engine steps them.

Adversarial and staged models (WAE-GP, LMGAE, VAE-GAN, the 2-stage VAE) train several optimizers,
each on its own loss and parameters, with Lightning's manual optimization. They subclass
:class:`PhasedAutoencoder` and return a list of :class:`Phase` objects from ``phases()``; the
engine builds ``configure_optimizers`` (one optimizer per phase, in list order, so checkpoints
keep their optimizer order) and ``training_step`` from it. One training batch goes:

1. ``begin_batch(x)``: per-batch state the phases share (VAE-GAN draws its noise here).
2. Every active phase in order, with only its parameters requiring grad (``toggled_optimizer``):
   ``repeats`` times loss, ``zero_grad``, backward, step, ``after_step``. With ``simultaneous =
   True`` (VAE-GAN's Algorithm 1) every active phase's gradient is taken first, all at the same
   parameters, and then every optimizer steps whose phase's ``step_if`` (if any) allows it on
   this batch's terms (Larsen et al.'s equilibrium gating).
3. ``end_batch(terms, logged)``, after the last step.

**One optimizer step per batch** with ``fresh_batches = True`` (the WAE-GP/LMGAE authors'
recipe, a new batch and prior draw for every step): the batch takes one step of the *cycle* (the
active phases' steps in order, each ``repeats`` times), the one at ``global_step mod
len(cycle)``, so the loader's batch size is the per-step one (the authors' 64) and a cycle of k
steps takes k batches; :meth:`PhasedAutoencoder.cycles_done` counts cycles for schedules. Each
phase's latest terms are kept for logging. A phase's ``lr_factor`` (a schedule from counters a
checkpoint restores) scales its optimizer's groups' rates (``base_lr``) before its steps.

**One step is one batch.** ``trainer.global_step`` advances by exactly 1 per training batch,
whatever the number of phases and repeats, so ``max_steps``, ``val_check_interval``,
``log_every_n_steps``, schedules and checkpoint names count batches as for the one-optimizer VAE.
Lightning counts each ``LightningOptimizer.step()`` call; the engine calls it for the batch's
last step only, and takes every other step with :func:`step_uncounted`.

Logged: ``train/loss`` every batch (progress bar): the term of the first active phase that names
a ``headline``, else the first active phase's ``"loss"``; on the batches the loggers write
(:meth:`AutoencoderModule.logger_writes_this_step`), each phase's ``"loss"`` as
``train/<phase name>_loss`` and its other terms as ``train/<term>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import lightning as L
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn
from torch.optim import Optimizer
from typing_extensions import override

from latentzoo.zoo.base import AutoencoderModule
from latentzoo.zoo.optimizers import rmsprop
from latentzoo.zoo.speed import select_kernel

__all__ = ["OptimizerFactory", "Phase", "PhasedAutoencoder", "rmsprop", "step_uncounted"]

OptimizerFactory = Callable[..., Optimizer]
"""Called as ``factory(phase.params, phase.lr)``; a ``torch.optim`` class is one. The default is
PyTorch's RMSProp (:func:`latentzoo.zoo.optimizers.rmsprop`)."""


@dataclass(frozen=True)
class Phase:
    """One optimizer's share of a training batch.

    Attributes:
        name: The phase's ``"loss"`` is logged as ``train/<name>_loss``, its other terms under
            their own names (``train/recon``, ``train/gp``, ...).
        loss: x -> dict of terms with the key ``"loss"``, the one this phase's optimizer minimizes.
        params: What this phase's optimizer owns and changes, handed to ``optimizer`` as is:
            parameters, or a module when the factory reads its structure (``adam_with_gamma``).
        lr: The optimizer's learning rate.
        repeats: Optimizer steps per batch (``n_critic`` for a critic).
        after_step: Called after every step, e.g. to project parameters back onto a constraint.
        optimizer: Builds the optimizer from ``(params, lr)``; RMSProp by default.
        active: Whether the phase runs on this batch (the 2-stage VAE's stage by epoch); None:
            always. An inactive phase keeps its optimizer and that optimizer's state.
        headline: The key of one of this phase's terms that is the run's ``train/loss`` (logged
            under that name only); see the module docstring for the default.
        lr_factor: Multiplies the optimizer's learning rates on this batch (None: 1).
        step_if: Given every active phase's terms of the batch, whether this phase's optimizer
            steps (None: always); simultaneous models only (every gradient taken first).
    """

    name: str
    loss: Callable[[Tensor], dict[str, Tensor]]
    params: Iterable[nn.Parameter] | nn.Module
    lr: float
    repeats: int = 1
    after_step: Callable[[], None] | None = None
    optimizer: OptimizerFactory = rmsprop
    active: Callable[[], bool] | None = None
    headline: str | None = None
    lr_factor: Callable[[], float] | None = None
    step_if: Callable[[Mapping[str, Tensor]], bool] | None = None

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"phase {self.name!r}: repeats must be >= 1, got {self.repeats}")

    def is_active(self) -> bool:
        return self.active is None or self.active()

    def scale_lr(self, optimizer: Optimizer) -> None:
        """Set each parameter group's lr to its ``base_lr`` times :attr:`lr_factor`."""
        if self.lr_factor is None:
            return
        factor = self.lr_factor()
        for group in optimizer.param_groups:
            group["lr"] = group.setdefault("base_lr", group["lr"]) * factor


def _no_closure() -> None:
    return None


def step_uncounted(trainer: L.Trainer, optimizer: LightningOptimizer) -> None:
    """``optimizer.step()`` without advancing ``trainer.global_step``.

    In manual optimization ``global_step`` is the number of ``LightningOptimizer.step()`` calls:
    that method is the manual loop's progress hook (``global_step += 1``), then the public
    ``Strategy.optimizer_step`` (precision plugin: AMP's grad scaler, the
    ``on_before_optimizer_step`` hooks; DDP's model averaging; gradients were all-reduced in
    backward already), then the hook that closes the step. Calling ``Strategy.optimizer_step``
    directly is therefore the same step, uncounted. Should a Lightning release move work into
    ``LightningOptimizer.step``, tests/zoo/test_phases.py (global_step per batch, hooks per step)
    fails.
    """
    # ``Trainer.profiler`` is public but assigned by a connector, out of mypy's sight.
    with trainer.profiler.profile("optimizer_step"):  # type: ignore[attr-defined]
        trainer.strategy.optimizer_step(optimizer.optimizer, _no_closure)


class PhasedAutoencoder(AutoencoderModule):
    """Base of the models trained by several optimizers: declare ``phases()``, nothing else.

    Subclasses build their nets in ``__init__`` and return their :class:`Phase` list from
    :meth:`phases` (called once per batch and by ``configure_optimizers``; build it from the
    model's attributes, cheaply). ``compute_losses`` still gives the validation and test terms.
    """

    simultaneous: ClassVar[bool] = False
    """Take every active phase's gradient before any optimizer steps (each phase once a batch)."""

    fresh_batches: bool = False
    """One step of the phases' cycle per training batch (see the module docstring)."""

    @property
    @override
    def automatic_optimization(self) -> bool:
        """Always False: the engine steps the phases' optimizers itself."""
        return False

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        if value:
            raise ValueError(f"{type(self).__name__} is trained by its phases, not automatically")

    def phases(self) -> list[Phase]:
        """The optimizers' shares of one batch, in order; one optimizer per phase."""
        raise NotImplementedError(f"{type(self).__name__} must implement phases()")

    def begin_batch(self, x: Tensor) -> None:
        """Called with the batch before the first phase; nothing by default."""

    def end_batch(self, terms: dict[str, Tensor], logged: bool) -> None:
        """Called after the batch's last step; nothing by default.

        Args:
            terms: Every phase's detached terms, keyed as logged without ``train/``.
            logged: Whether the loggers write this batch (decided before its steps; by now
                ``global_step`` already counts the batch).
        """

    @override
    def configure_optimizers(self) -> list[Optimizer]:
        phases = self.phases()
        names = [p.name for p in phases]
        if len(set(names)) != len(names):
            raise ValueError(f"{type(self).__name__}'s phases need distinct names, got {names}")
        if self.simultaneous and (self.fresh_batches or any(p.repeats != 1 for p in phases)):
            raise ValueError(
                f"{type(self).__name__} updates its phases simultaneously, so each steps once a "
                f"batch and on that batch; got repeats {[p.repeats for p in phases]} and "
                f"fresh_batches={self.fresh_batches}"
            )
        if not self.simultaneous and any(p.step_if is not None for p in phases):
            raise ValueError(
                f"{type(self).__name__}: a phase's step_if needs simultaneous = True (every "
                f"gradient of the batch taken before its first step)"
            )
        return [select_kernel(p.optimizer(p.params, p.lr), self.speed.optimizer) for p in phases]

    @override
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x = batch[0]
        self.check_batch(x)
        logged = self.logger_writes_this_step()  # before the counted step moves global_step
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        active = [(p, o) for p, o in zip(self.phases(), optimizers, strict=True) if p.is_active()]
        if not active:
            raise RuntimeError(
                f"{type(self).__name__} has no active phase at epoch {self.current_epoch}; a "
                f"batch must step at least one optimizer (check the phases' `active` rules)"
            )
        self.begin_batch(x)
        run = self._run_cycle_step if self.fresh_batches else self._run_in_turn
        done = (self._run_simultaneous if self.simultaneous else run)(x, active)
        terms, headline = _collect(done)
        if logged:
            self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=len(x))
        self.log("train/loss", headline, prog_bar=True, batch_size=len(x))
        self.end_batch(terms, logged)
        return headline

    def _step(self, optimizer: LightningOptimizer, counted: bool) -> None:
        if counted:
            optimizer.step()  # the batch's one step in trainer.global_step
        else:
            step_uncounted(self.trainer, optimizer)

    def cycles_done(self) -> int:
        """Cycles of the phases completed: ``global_step`` without ``fresh_batches`` (one cycle a
        batch), ``global_step // len(cycle)`` with it."""
        if not self.fresh_batches:
            return self.global_step
        return self.global_step // sum(p.repeats for p in self.phases() if p.is_active())

    def _run_in_turn(
        self, x: Tensor, active: list[tuple[Phase, LightningOptimizer]]
    ) -> list[tuple[Phase, dict[str, Tensor]]]:
        done = []
        for i, (phase, opt) in enumerate(active):
            phase.scale_lr(opt.optimizer)
            with self.toggled_optimizer(opt):
                for r in range(phase.repeats):
                    terms = phase.loss(x)
                    opt.zero_grad()
                    self.manual_backward(terms["loss"])
                    self._step(opt, counted=i == len(active) - 1 and r == phase.repeats - 1)
                    if phase.after_step is not None:
                        phase.after_step()
            done.append((phase, terms))
        return done

    def _run_cycle_step(
        self, x: Tensor, active: list[tuple[Phase, LightningOptimizer]]
    ) -> list[tuple[Phase, dict[str, Tensor]]]:
        """The cycle's step at ``global_step``, on this batch; every phase's latest terms."""
        steps = [(p, o) for p, o in active for _ in range(p.repeats)]  # one cycle, in order
        phase, opt = steps[self.global_step % len(steps)]
        phase.scale_lr(opt.optimizer)
        with self.toggled_optimizer(opt):
            terms = phase.loss(x)
            opt.zero_grad()
            self.manual_backward(terms["loss"])
            self._step(opt, counted=True)
            if phase.after_step is not None:
                phase.after_step()
        latest = self.__dict__.setdefault("_latest_terms", {})  # not state: logging only
        latest[phase.name] = {k: v.detach() for k, v in terms.items()}
        return [(p, latest[p.name]) for p, _ in active if p.name in latest]

    def _run_simultaneous(
        self, x: Tensor, active: list[tuple[Phase, LightningOptimizer]]
    ) -> list[tuple[Phase, dict[str, Tensor]]]:
        done = []
        for phase, opt in active:
            with self.toggled_optimizer(opt):  # only this phase's parameters receive gradients
                terms = phase.loss(x)
                opt.zero_grad()
                self.manual_backward(terms["loss"])
            done.append((phase, terms))
        every = {k: v for _, t in done for k, v in t.items() if k != "loss"}
        stepping = [(p, o) for p, o in active if p.step_if is None or p.step_if(every)]
        if not stepping:
            raise RuntimeError(
                f"{type(self).__name__}'s step_if rules vetoed every step of a batch; a batch "
                f"must step at least one optimizer"
            )
        for i, (phase, opt) in enumerate(stepping):  # every gradient is taken: now the steps
            phase.scale_lr(opt.optimizer)
            self._step(opt, counted=i == len(stepping) - 1)
            if phase.after_step is not None:
                phase.after_step()
        return done


def _collect(done: list[tuple[Phase, dict[str, Tensor]]]) -> tuple[dict[str, Tensor], Tensor]:
    """The detached terms to log (keys without ``train/``) and the batch's headline loss."""
    terms: dict[str, Tensor] = {}
    headline: Tensor | None = None
    for phase, t in done:
        terms.update({k: v.detach() for k, v in t.items() if k not in ("loss", phase.headline)})
        terms[f"{phase.name}_loss"] = t["loss"].detach()
        if headline is None and phase.headline is not None:
            headline = t[phase.headline].detach()
    return terms, done[0][1]["loss"].detach() if headline is None else headline

"""What the speed scripts share: the machine's peak, FLOP counts, in-memory images, the plain loop.

- :func:`peak_gflops`: a large matrix product timed like the runs it is compared with (warm-up,
  then wall time around ``reps`` products, synchronized on CUDA), as GFLOP/s; :func:`peaks` for
  each dtype the runs may use.
- :func:`step_flops`: FLOPs of one callable by the formulas of ``torch.utils.flop_counter``
  (matrix products and convolutions, forward and backward; elementwise work is not counted).
- :class:`StepTimer` (a Lightning callback) and :func:`forever`: the timed part of a ``fit`` and
  the training loader's batches epoch after epoch, for the plain loop.
- :class:`RandomImages`: Fashion-MNIST's shape and sizes as uniform random ``uint8`` images held
  in memory, so no data file is needed (the nets' cost does not depend on the pixels).
- :func:`run_record` and :func:`write_record`: the head of a script's ``--out`` JSON (its
  command, machine, torch, threads, date and arguments) and the file, rewritten as rounds end.
- :func:`plain_step`: one training batch of a zoo model without Lightning: the model's own loss
  functions, optimizers and hooks (``optimizer_step`` for the one-optimizer models, the phases
  with their repeats, ``after_step``, ``begin_batch``/``end_batch`` and each phase's parameters
  alone requiring grad for the phased ones), in the same order as Lightning's loop.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.zoo import AutoencoderModule
from latentzoo.zoo.phases import Phase, PhasedAutoencoder, _collect

__all__ = [
    "RandomImages",
    "StepTimer",
    "device_name",
    "forever",
    "peak_gflops",
    "peaks",
    "plain_step",
    "step_flops",
    "sync",
]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it is the work's end."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gflops(
    device: torch.device, n: int, reps: int = 10, dtype: torch.dtype = torch.float32
) -> float:
    """GFLOP/s of ``reps`` (n, n) @ (n, n) products in ``dtype`` on ``device`` (2 n^3 each)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    out = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b, out=out)
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b, out=out)
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {torch.get_num_threads()} threads"
    return f"CPU, {torch.get_num_threads()} threads"


def run_record(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The head of a script's results: its command line, machine, torch, threads, date, args."""
    return {
        "command": shlex.join(sys.argv), "device": device_name(device),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "date": datetime.date.today().isoformat(), "args": vars(args),
    }  # fmt: skip


def write_record(path: str | None, results: dict[str, Any]) -> None:
    """``results`` as JSON at ``path`` (nothing without one); called after every round, so a
    run stopped by a time limit keeps the rounds done."""
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


def peaks(device: torch.device, n: int) -> dict[str, float]:
    """fp32 matrix-product peak; on CUDA also TF32 (cuDNN's convolutions use it by default in
    fp32, torch.backends.cudnn.allow_tf32) and bf16 (bf16-mixed variants)."""
    out = {"fp32": peak_gflops(device, n)}
    if device.type == "cuda":
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        out["tf32"] = peak_gflops(device, n)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        out["bf16"] = peak_gflops(device, n, dtype=torch.bfloat16)
    return out


class FlopCount(TorchDispatchMode):
    """FLOPs of the ops run under it, by torch's formulas (``flop_counter.flop_registry``).

    ``FlopCounterMode`` counts the same, but its per-module tracker hooks the backward and
    breaks ``torch.autograd.grad`` (WAE-GP's gradient penalty), so this is its counting alone:
    an op without a formula is decomposed (``linear`` into ``addmm``) and its parts counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        packet = func._overloadpacket
        if packet not in flop_registry:
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if packet in flop_registry:
            self.total += flop_registry[packet](*args, **kwargs, out_val=out)
        return out


def step_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of ``step`` (:class:`FlopCount`)."""
    with FlopCount() as counter:
        step()
    return counter.total


class StepTimer(L.Callback):
    """Wall time of the batches after the warm-up, synchronized with the device at both ends."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps, self.start, self.end = warmup, steps, 0.0, 0.0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if trainer.global_step == self.warmup:
            sync(pl_module.device)
            self.start = time.perf_counter()
        elif trainer.global_step == self.warmup + self.steps:
            sync(pl_module.device)
            self.end = time.perf_counter()


def forever(data: RandomImages) -> Iterator[tuple[Tensor, Tensor]]:
    """The training loader's batches, epoch after epoch."""
    while True:
        yield from data.train_dataloader()


class RandomImages(InMemoryDataModule):
    """Random uint8 images of shape ``(1, 28, 28)``: 60,000 training (5,000 held out for
    validation, as Fashion-MNIST) and 1,000 test images, from ``seed``."""

    def __init__(self, batch_size: int = 128, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        n = 60_000 if train else 1_000
        gen = torch.Generator().manual_seed(self.seed * 2 + int(train))
        x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=gen)
        return x, torch.randint(0, 10, (n,), generator=gen)


@contextlib.contextmanager
def only_these_require_grad(optimizer: Optimizer, optimizers: list[Optimizer]) -> Iterator[None]:
    """Lightning's ``toggled_optimizer``: the other optimizers' parameters need no gradient."""
    saved = {p: p.requires_grad for o in optimizers for g in o.param_groups for p in g["params"]}
    for p in saved:
        p.requires_grad_(False)
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.requires_grad_(saved[p])
    try:
        yield
    finally:
        for p, flag in saved.items():
            p.requires_grad_(flag)


Autocast = Callable[[], contextlib.AbstractContextManager]


def plain_step(
    model: AutoencoderModule, optimizers: list[Optimizer], autocast: Autocast
) -> Callable[[Tensor], Tensor]:
    """One training batch ``x -> loss`` of ``model`` without Lightning (see the module docstring).

    ``autocast()`` is entered around each forward (``contextlib.nullcontext`` in fp32).
    """
    if not isinstance(model, PhasedAutoencoder):
        (opt,) = optimizers

        def automatic(x: Tensor) -> Tensor:
            losses: list[Tensor] = []

            def closure() -> Tensor:
                with autocast():
                    loss = model.compute_losses(x)["loss"]
                loss.backward()
                losses.append(loss.detach())
                return loss

            opt.zero_grad(set_to_none=True)
            model.optimizer_step(0, 0, opt, closure)  # LipschitzVAE clips its weights here
            return losses[0]

        return automatic

    def run_phase(x: Tensor, phase: Phase, opt: Optimizer, step: bool) -> dict[str, Tensor]:
        with only_these_require_grad(opt, optimizers):
            for _ in range(phase.repeats if step else 1):
                with autocast():
                    terms = phase.loss(x)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                if step:
                    opt.step()
                    if phase.after_step is not None:
                        phase.after_step()
        return terms

    calls = [0]  # batches taken: with fresh_batches, which step of the cycle this batch takes

    def phased(x: Tensor) -> Tensor:
        model.begin_batch(x)
        pairs = zip(model.phases(), optimizers, strict=True)
        active = [(p, o) for p, o in pairs if p.is_active()]
        if model.fresh_batches:  # one step of the cycle per batch, as the engine takes them
            cycle = [(p, o) for p, o in active for _ in range(p.repeats)]
            phase, opt = cycle[calls[0] % len(cycle)]
            calls[0] += 1
            with only_these_require_grad(opt, optimizers):
                with autocast():
                    terms = phase.loss(x)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                opt.step()
                if phase.after_step is not None:
                    phase.after_step()
            return terms["loss"].detach()
        simultaneous = model.simultaneous
        done = [(p, run_phase(x, p, o, step=not simultaneous)) for p, o in active]
        if simultaneous:  # every gradient first, then every step (VAE-GAN)
            for phase, opt in active:
                opt.step()
                if phase.after_step is not None:
                    phase.after_step()
        terms, headline = _collect(done)
        with warnings.catch_warnings():  # end_batch logs; there is no trainer to log to
            warnings.filterwarnings("ignore", "You are trying to `self.log")
            model.end_batch(terms, logged=False)
        return headline

    return phased

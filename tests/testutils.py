"""Constants and helpers shared by test modules (``tests/`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import Tensor

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.zoo.wae_gp import WAEGP

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
# The one test of "are the real data here": every test that reads Fashion-MNIST carries it.
needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST_DEBIAN.is_dir(),
    reason="needs real Fashion-MNIST: Debian's package (apt-get install dataset-fashion-mnist)",
)
ROOT = Path(__file__).parents[1]  # the checkout whose package the tests' subprocesses run

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


# -- processes a test starts ------------------------------------------------------------------


def _default_signals() -> None:
    """In the child, before exec: SIGINT and SIGTERM back to their defaults.

    A shell started in the background (``nohup bash -c '...' &``) starts its jobs with SIGINT
    ignored, an ignored signal stays ignored across exec, and Python then installs no
    KeyboardInterrupt handler: a test's Ctrl-C would go unheard. It only calls sigaction, which
    is safe between fork and exec even with threads in the parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def started(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    pythonpath: Sequence[Path] = (),
    **popen: Any,
) -> Iterator[subprocess.Popen[str]]:
    """``python ARGS`` (``-m latentzoo fit ...``) in a process the test owns, as a user runs it.

    The child runs this checkout's package (:data:`ROOT` first on its ``PYTHONPATH``, then
    ``pythonpath``, then ``env``'s own), with SIGINT and SIGTERM at their defaults whatever the
    test runner inherited, in a session of its own. On the way out, whether the test passed or
    failed, the whole session's process group (DDP ranks and cells it started included) is
    SIGKILLed and the child reaped, so a failing test never leaves a process behind.

    Args:
        args: Arguments to the Python interpreter.
        cwd: Working directory of the child.
        env: Its environment (default: this process's).
        pythonpath: Folders put on its ``PYTHONPATH`` after :data:`ROOT`.
        popen: More ``subprocess.Popen`` arguments (``stdout``, ``stderr``); text mode is on.
    """
    base = dict(os.environ if env is None else env)
    path = [str(ROOT), *map(str, pythonpath), *filter(None, [base.get("PYTHONPATH")])]
    proc = subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env={**base, "PYTHONPATH": os.pathsep.join(path)},
        text=True,
        start_new_session=True,  # its own process group, killed as one below
        preexec_fn=_default_signals,
        **popen,
    )
    with proc:  # closes the pipes and reaps the child after the finally below
        try:
            yield proc
        finally:
            kill_group(proc)


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL every process left in ``proc``'s group (started by :func:`started`)."""
    with suppress(ProcessLookupError):  # the child and all it started are gone already
        os.killpg(proc.pid, signal.SIGKILL)


def group_members(proc: subprocess.Popen[str]) -> list[int]:
    """The processes of ``proc``'s group that still run (zombies aside), read from ``/proc``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):  # gone meanwhile
            continue
        if int(group) == proc.pid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def run_python(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    pythonpath: Sequence[Path] = (),
    timeout: float = 600,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` of ``python ARGS`` through :func:`started`: output captured as text;
    past ``timeout`` seconds, the whole group is killed and ``TimeoutExpired`` raised."""
    with started(*args, cwd=cwd, env=env, pythonpath=pythonpath,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
        out, err = proc.communicate(timeout=timeout)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check:
        done.check_returncode()
    return done

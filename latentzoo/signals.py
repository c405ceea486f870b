"""SIGTERM stops a run the way Ctrl-C does: at once, keeping what was computed and saved.

SIGTERM is how a job is ended from outside: SLURM sends it at the time limit or on preemption and
SIGKILLs the job after its grace period (``KillWait``, 30 s by default); ``timeout``, ``docker
stop`` and ``kill`` send it too. Python's default is to die on the spot, and the handler that
Lightning installs for the length of each ``fit``/``validate``/``test`` only sets
``trainer.received_sigterm``, which its loops read between batches: an evaluation inside a
callback (Inception features for FID, minutes on a CPU) ran on until the SIGKILL, and its values
and the run's last state were lost.

Inside :class:`StopOnSigterm`, the first SIGTERM raises :class:`Terminated` in the main thread,
wherever it is. :class:`Terminated` is a :class:`KeyboardInterrupt`, so it takes Ctrl-C's path
everywhere: Lightning's graceful shutdown (``on_exception`` hooks, loggers finalized, the DDP
ranks it launched killed), :class:`~latentzoo.callbacks.LastCheckpoint`'s save of the last
finite state (in one process; under DDP the file keeps its last save), and the values of every
evaluation that had finished, written when each finished
(:class:`~latentzoo.callbacks.PeriodicEvaluation`). A second SIGTERM is ignored, so it cannot
break off that shutdown.

Lightning's handler composes with this one but runs first, and under DDP it calls a broadcast
inside the handler, which waits forever when the other rank is at another collective (2 of 3
runs stopped by SIGTERM here hung in it). :func:`take_precedence` puts this handler back in its
place; :class:`~latentzoo.callbacks.LastCheckpoint` calls it when training starts and
:class:`~latentzoo.callbacks.PeriodicEvaluation` when an evaluation does. Whatever happens, a
watchdog thread, woken by the signal itself and not by the main thread (which may be stuck in
such a collective), ends a process still alive :data:`GRACE_S` seconds after the first SIGTERM
with status 143: a stopped run never hangs.

    with StopOnSigterm() as sigterm:
        try:
            trainer.fit(model, datamodule)
        except BaseException:  # Terminated, or what Lightning made of it (sys.exit(1))
            if sigterm.received is None:
                raise
            sigterm.exit()  # says what was kept (``sigterm.received.kept``), exits 143
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any, ClassVar, NoReturn

__all__ = ["GRACE_S", "SIGTERM_EXIT", "StopOnSigterm", "Terminated", "take_precedence"]

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143: the shell's status for "ended by SIGTERM"
GRACE_S = 25.0  # within SLURM's default KillWait of 30 s, so the exit is ours, not a SIGKILL


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's :class:`KeyboardInterrupt`.

    Attributes:
        kept: What the code on the way out kept, one phrase each (``last.ckpt ... holds step
            12``), for the command's last message.
    """

    def __init__(self) -> None:
        super().__init__("SIGTERM")
        self.kept: list[str] = []


class StopOnSigterm:
    """While inside, the first SIGTERM raises :class:`Terminated`; see the module docstring.

    Outside the main thread, where Python cannot set signal handlers, it does nothing.

    Args:
        grace_s: Seconds after the first SIGTERM before the process exits without cleaning up.

    Attributes:
        received: The :class:`Terminated` raised, once a SIGTERM came; None before.
    """

    active: ClassVar[StopOnSigterm | None] = None  # the one whose handler is installed

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self.received: Terminated | None = None
        self._previous: Any = None
        self._outer: StopOnSigterm | None = None  # the one active before, when nested
        self._wakeup: int | None = None  # write end of the watchdog's pipe

    def __enter__(self) -> StopOnSigterm:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self.handle)
            self._wakeup = _start_watchdog(self.grace_s)
            self._outer, StopOnSigterm.active = StopOnSigterm.active, self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if StopOnSigterm.active is not self:
            return
        signal.signal(signal.SIGTERM, self._previous)
        StopOnSigterm.active = self._outer
        if self._wakeup is not None:  # the watchdog reads EOF and ends, unless counting down
            signal.set_wakeup_fd(-1)
            os.close(self._wakeup)
            self._wakeup = None

    def exit(self, announce: bool = True) -> NoReturn:
        """After the stop: one line on what was kept (if ``announce``: the process that speaks
        for the run, rank 0), then exit with status 143."""
        kept = self.received.kept if self.received is not None else []
        if announce:
            what = "; ".join(kept) or "the evaluations that had finished were logged"
            print(f"latentzoo: stopped by SIGTERM; {what}", file=sys.stderr, flush=True)
        raise SystemExit(SIGTERM_EXIT) from None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The SIGTERM handler: raise :class:`Terminated` the first time, then ignore."""
        if self.received is not None:
            return  # already on the way out: let the save in progress finish
        self.received = Terminated()
        raise self.received


def take_precedence() -> None:
    """Put the active :class:`StopOnSigterm`'s handler back in place of whatever a Trainer has
    installed over it since (Lightning's handler, until the run's teardown restores ours)."""
    active = StopOnSigterm.active
    if active is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, active.handle)


def _start_watchdog(grace_s: float) -> int | None:
    """Start the thread that ends the process ``grace_s`` after a SIGTERM; the write end of the
    pipe the signal wakes it through (None where another user holds the wakeup fd)."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    if previous != -1:  # someone else's (an asyncio loop): leave it theirs, go without
        signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)
        return None
    thread = threading.Thread(target=_watch, args=(read, grace_s), daemon=True)
    thread.start()
    return write


def _watch(read: int, grace_s: float) -> None:
    """Wait for SIGTERM's byte on the wakeup pipe, then for ``grace_s``, then end the process."""
    with os.fdopen(read, "rb", buffering=0) as pipe:
        while data := pipe.read(64):  # one byte per signal that has a Python handler
            if signal.SIGTERM in data:
                time.sleep(grace_s)
                print(
                    f"latentzoo: still running {grace_s:.0f} s after SIGTERM; exiting without "
                    f"cleaning up (last.ckpt keeps its last complete save)",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(SIGTERM_EXIT)


def _forget_wakeup_fd() -> None:
    """In a forked child (a DataLoader worker): its signals must not wake the parent's watchdog."""
    if StopOnSigterm.active is not None:
        signal.set_wakeup_fd(-1)


os.register_at_fork(after_in_child=_forget_wakeup_fd)

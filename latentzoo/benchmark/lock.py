"""One process at a time in a benchmark's output folder.

Two ``latentzoo benchmark`` runs into one ``--out`` would train the same cell into the same run
folder and overwrite each other's ``last.ckpt``. :func:`hold` takes an exclusive ``flock`` on
``OUT/.lock`` for as long as the process works there, and writes who holds it (process id, host,
command, start time) into the file; a second process is refused with that line. The kernel
releases a ``flock`` when its process ends, however it ends (``kill -9`` included), so a lock
is never left stale.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["FolderLockedError", "hold"]


class FolderLockedError(RuntimeError):
    """Another process works in the folder; the message says which."""


@contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock inside the block.

    Raises:
        FolderLockedError: Another process holds it; the message names that process.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise FolderLockedError(f"{folder} is in use by {_describe(handle.read())}") from None
        handle.seek(0)
        handle.truncate()
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(["latentzoo", *sys.argv[1:]]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        handle.write(json.dumps(holder))
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return (
            f"process {holder['pid']} on {holder['host']} since {holder['since']} "
            f"({holder['command']}); wait for it to end, or use another --out"
        )
    except (ValueError, KeyError, TypeError):
        return "another process; wait for it to end, or use another --out"

"""Shared fixtures: a fake network for download tests, a check of what the loaders yield, and
damaged copies of fixture files for the corruption tests."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import torch

from latentzoo.datamodules import _files
from latentzoo.datamodules._files import CorruptFileError
from latentzoo.datamodules.base import InMemoryDataModule

T = TypeVar("T")
DAMAGE = ("truncated", "random bytes", "header bit flip", "bit flip")
SECONDS_PER_FILE = 2.0  # a tiny damaged file is refused in milliseconds; a hang is a failure


class FakeResponse:
    """Stands in for urlopen's response: serves ``payload`` in chunks, optionally breaking off."""

    def __init__(self, payload: bytes, fail_after: int | None, exc: BaseException) -> None:
        self.payload, self.fail_after, self.exc = payload, fail_after, exc
        self.sent = 0
        self.headers = {"Content-Length": str(len(payload))}

    def read(self, n: int) -> bytes:
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise self.exc
        n = min(n, 1000)  # small chunks, so a partial file exists before the failure
        chunk = self.payload[self.sent : self.sent + n]
        self.sent += len(chunk)
        return chunk

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *args: object) -> None:
        pass


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """Replace the network with ``files`` (URL -> bytes); returns the list of URLs requested.

    ``fail_after=k`` makes every transfer raise ``exc`` once ``k`` bytes have been read.
    """

    def install(
        files: dict[str, bytes], fail_after: int | None = None, exc: BaseException | None = None
    ) -> list[str]:
        requested: list[str] = []

        def fake_urlopen(request: Any, timeout: float = 0) -> FakeResponse:
            url = request.full_url
            requested.append(url)
            if url not in files:
                raise OSError(f"HTTP Error 404: {url}")
            return FakeResponse(files[url], fail_after, exc or ConnectionResetError("reset"))

        monkeypatch.setattr(_files, "urlopen", fake_urlopen)
        return requested

    return install


@pytest.fixture
def check_loaders() -> Callable[[InMemoryDataModule, int], None]:
    """Assert the train loader's batches become floats in [0, 1] equal to the stored uint8 / 255."""

    def check(dm: InMemoryDataModule, batch_size: int) -> None:
        dm.setup("fit")
        x, y = next(iter(dm.train_dataloader()))
        assert x.dtype == torch.uint8 and x.shape == (batch_size, *dm.data_shape)
        xf, yf = dm.on_after_batch_transfer((x, y), 0)
        assert xf.dtype == torch.float32 and xf.shape == x.shape
        assert xf.min() >= 0.0 and xf.max() <= 1.0
        torch.testing.assert_close(xf * 255, x.float())
        assert yf.dtype == torch.int64 and yf.shape == (batch_size,)
        dm.setup("test")
        sizes = [len(b[0]) for b in dm.test_dataloader()]
        assert sum(sizes) == len(dm.test_set)  # evaluation drops no sample

    return check


def damaged_copies(valid: bytes, n: int, seed: int, header: int) -> list[tuple[str, bytes]]:
    """``n`` damaged versions of ``valid``, cycling through :data:`DAMAGE`: cut at a random offset,
    random bytes (as long as ``valid`` at most), one bit flipped in the first ``header`` bytes, or
    one bit flipped anywhere."""
    rng = np.random.default_rng(seed)
    copies = []
    for i in range(n):
        kind = DAMAGE[i % len(DAMAGE)]
        if kind == "truncated":
            data = valid[: rng.integers(0, len(valid))]
        elif kind == "random bytes":
            data = rng.bytes(int(rng.integers(1, len(valid))))
        else:
            flipped = bytearray(valid)
            at = rng.integers(0, header if kind == "header bit flip" else len(valid))
            flipped[at] ^= 1 << int(rng.integers(0, 8))
            data = bytes(flipped)
        copies.append((kind, data))
    return copies


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block takes longer than ``seconds``."""

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{what} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_or_refuse(path: Path, load: Callable[[], T]) -> T | CorruptFileError:
    """Run ``load`` after ``path`` was damaged: it must return, or raise a CorruptFileError that
    names ``path``, within :data:`SECONDS_PER_FILE`. Any other exception fails the test."""
    start = time.perf_counter()
    with time_limit(SECONDS_PER_FILE, f"loading damaged {path.name}"):
        try:
            result: T | CorruptFileError = load()
        except CorruptFileError as err:
            assert err.path == path and str(path) in str(err), str(err)
            assert "delete" in err.remedy or "extract" in err.remedy or "replace" in err.remedy
            result = err
    assert time.perf_counter() - start < SECONDS_PER_FILE
    return result


@pytest.fixture(name="damaged_copies")
def _damaged_copies() -> Callable[..., list[tuple[str, bytes]]]:
    return damaged_copies


@pytest.fixture(name="load_or_refuse")
def _load_or_refuse() -> Callable[..., Any]:
    return load_or_refuse

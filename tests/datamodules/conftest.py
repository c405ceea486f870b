"""Shared fixtures: a fake network for download tests and a check of what the loaders yield."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from latentzoo.datamodules import _files
from latentzoo.datamodules.base import InMemoryDataModule


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

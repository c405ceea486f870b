"""FrechetDistance / KernelDistance against direct computations, and the real-state round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from latentzoo.metrics.fid import FrechetDistance, KernelDistance, load_real_state, real_state


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_matches_scipy_on_random_features() -> None:
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(300, 16, generator=gen, dtype=torch.float64)
    fake = torch.randn(200, 16, generator=gen, dtype=torch.float64) * 1.3 + 0.5
    fid = FrechetDistance(16)
    for chunk in real.split(64):  # batches, as the callback feeds them
        fid.update(chunk, real=True)
    for chunk in fake.split(50):
        fid.update(chunk, real=False)
    expected = scipy_fid(real.numpy(), fake.numpy())
    assert float(fid.compute()) == pytest.approx(expected, rel=1e-4)


def test_reset_keeps_real_side_and_state_round_trips() -> None:
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(100, 8, generator=gen), torch.randn(100, 8, generator=gen) + 1
    fid, kid = FrechetDistance(8), KernelDistance(8, subsets=5, subset_size=50)
    fid.update(real, real=True)
    kid.update(real, real=True)
    state = real_state(fid, kid)
    fid.reset()
    assert int(fid.real_features_num_samples) == 100  # reset() only clears generated samples
    other_fid, other_kid = FrechetDistance(8), KernelDistance(8, subsets=5, subset_size=50)
    load_real_state(other_fid, other_kid, state)
    for m in (fid, other_fid):
        m.update(fake, real=False)
    assert float(other_fid.compute()) == pytest.approx(float(fid.compute()), rel=1e-9)
    other_kid.update(fake, real=False)
    torch.manual_seed(0)
    kid_value = other_kid.compute()[0]
    assert kid_value > 0.05  # a shift of 1 in every dimension is far from zero MMD


def test_wrong_feature_width_is_reported() -> None:
    with pytest.raises(ValueError, match=r"expected \(B, 8\) features"):
        FrechetDistance(8).update(torch.randn(4, 7), real=True)

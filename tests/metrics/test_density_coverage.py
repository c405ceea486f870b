"""Density and coverage (Naeem et al. 2020): the authors' prdc package on the same features, and
the expected values the paper derives for identical distributions, in low and high dimension and
at small N."""

from __future__ import annotations

import math

import prdc
import pytest
import torch

from latentzoo.metrics.features import density_coverage


def _gauss(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) * scale + shift


@pytest.mark.parametrize(
    ("n", "m", "d", "k"), [(400, 300, 8, 5), (150, 500, 64, 3), (60, 60, 2, 5)]
)
def test_agrees_with_the_authors_prdc_package(n: int, m: int, d: int, k: int) -> None:
    real, fake = _gauss(n, d, 0), _gauss(m, d, 1, shift=0.3, scale=1.2)
    ours = density_coverage(real, fake, k=k, chunk=128)  # chunks smaller than N: the merge path
    theirs = prdc.compute_prdc(real.numpy(), fake.numpy(), nearest_k=k)
    assert float(ours["density"]) == pytest.approx(theirs["density"], abs=1e-12)
    assert float(ours["coverage"]) == pytest.approx(theirs["coverage"], abs=1e-12)
    assert 0.1 < theirs["coverage"] < 0.99  # neither trivial value: the comparison has content


@pytest.mark.parametrize("d", [4, 64])
def test_identical_distributions_read_their_expected_values(d: int) -> None:
    """E[density] = 1 and E[coverage] = 1 - prod_{i=1..k} (N - i) / (N + M - i) (Naeem et al.,
    sec. 3.2), whatever the distribution and dimension. Measured over 20 draws of N = M = 1000:
    one draw's std is 0.006-0.010 for coverage and 0.026 (d = 4) to 0.085 (d = 64, hubs) for
    density; the mean of 10 draws is held to about 4 of its standard errors."""
    n = m = 1000
    k = 5
    expected = 1 - math.prod((n - i) / (n + m - i) for i in range(1, k + 1))
    draws = 10
    values = [density_coverage(_gauss(n, d, 2 * s), _gauss(m, d, 2 * s + 1), k=k)
              for s in range(draws)]  # fmt: skip
    coverage = sum(float(v["coverage"]) for v in values) / draws
    density = sum(float(v["density"]) for v in values) / draws
    assert coverage == pytest.approx(expected, abs=0.012)
    assert density == pytest.approx(1.0, abs=0.04 if d <= 4 else 0.11)


def test_disjoint_sets_read_zero_and_dropped_modes_read_their_share() -> None:
    real = torch.cat([_gauss(500, 8, 3, shift=-20.0), _gauss(500, 8, 4, shift=20.0)])
    far = _gauss(1000, 8, 5, shift=100.0)
    assert float(density_coverage(real, far)["coverage"]) == 0.0
    assert float(density_coverage(real, far)["density"]) == 0.0
    one_mode = _gauss(1000, 8, 6, shift=20.0)  # every sample in one of two equal modes
    values = density_coverage(real, one_mode)
    # the dropped mode's balls are empty, the kept one's hit as by 1,000 samples against 500
    kept = 1 - math.prod((500 - i) / (1500 - i) for i in range(1, 6))
    assert float(values["coverage"]) == pytest.approx(0.5 * kept, abs=0.02)
    # density is per sample: each still falls in ~k balls of its own mode, so mode dropping
    # leaves it at 1 (the paper's point: density measures fidelity, coverage diversity)
    assert float(values["density"]) == pytest.approx(1.0, abs=0.1)


def test_too_few_real_points_give_nan_not_an_error() -> None:
    values = density_coverage(_gauss(5, 3, 0), _gauss(10, 3, 1), k=5)
    assert math.isnan(float(values["density"])) and math.isnan(float(values["coverage"]))

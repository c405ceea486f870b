"""FD-infinity against the closed-form Fréchet distance of two Gaussians.

Measured spread (10 seeds, d = 64, truth 32.1; FID's error / FD-infinity's error, mean +- std):
N = 500: 2.51 +- 0.50 / 0.18 +- 0.68; N = 2,000: 0.57 +- 0.19 / -0.11 +- 0.40; N = 10,000:
0.12 +- 0.11 / 0.004 +- 0.17. In 256 dimensions (5 seeds, truth 131.5), N = 500: 34.0 / 6.8,
N = 2,000: 8.4 / -0.06, N = 10,000: 1.9 / 0.26: where the subsets are smaller than the feature
dimension the 1/n law holds less well and FD-infinity removes four fifths of the bias, not all.
FD-infinity has no bias beyond its noise, and more noise than FID (it extrapolates).
"""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import Tensor

from latentzoo.metrics.fd_infinity import fd_infinity, fid_by_subset_size
from latentzoo.metrics.frechet import frechet_distance, frechet_distance_between


def errors(d: int, n: int, seeds: int) -> tuple[list[float], list[float]]:
    """FID's and FD-infinity's errors against the closed form, one per seed."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    b = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    mu2 = 0.1 * torch.randn(d, generator=gen, dtype=torch.float64)
    truth = float(frechet_distance(torch.zeros(d), a @ a.T, mu2, b @ b.T))
    fid, inf = [], []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(100 + seed)
        real: Tensor = torch.randn(n, d, generator=gen, dtype=torch.float64) @ a.T
        fake: Tensor = torch.randn(n, d, generator=gen, dtype=torch.float64) @ b.T + mu2
        fid.append(float(frechet_distance_between(real, fake)) - truth)
        inf.append(float(fd_infinity(real, fake, seed=seed)["fd_inf"]) - truth)
    return fid, inf


@pytest.mark.parametrize("n", [500, 2000, 10_000])
def test_fd_infinity_has_no_bias_beyond_its_noise(n: int) -> None:
    fid, inf = errors(64, n, seeds=10)
    bias_fid = statistics.fmean(fid)
    standard_error = statistics.stdev(inf) / len(inf) ** 0.5
    assert bias_fid > 2 * statistics.stdev(fid) / len(fid) ** 0.5  # FID's bias is there
    assert abs(statistics.fmean(inf)) < 3 * standard_error + 0.25 * bias_fid


def test_where_n_is_below_the_dimension_most_of_the_bias_goes() -> None:
    fid, inf = errors(256, 500, seeds=3)
    assert abs(statistics.fmean(inf)) < 0.35 * statistics.fmean(fid)


def test_the_subset_sizes_span_a_fifth_to_all() -> None:
    x = torch.randn(300, 4, dtype=torch.float64)
    sizes, fids = fid_by_subset_size(x, x + 1, points=5, smallest=0.2, seed=0)
    assert sizes.tolist() == [60.0, 120.0, 180.0, 240.0, 300.0] and len(fids) == 5


def test_fd_infinity_joins_fid_wherever_fewer_than_10000_are_compared() -> None:
    """An evaluation's chosen metrics: FD-infinity beside FID at N < 10,000 on either side,
    named or default, and not without FID or at the full protocol."""
    from latentzoo.evaluation.spec import EvaluationSpec

    def chosen(**kw: object) -> list[str]:
        spec = EvaluationSpec(extractor="pixels", **kw)  # type: ignore[arg-type]
        return [i.name for i in spec.chosen_metrics()]

    assert "fd_infinity" not in chosen()  # 10,000 against 10,000
    assert "fd_infinity" in chosen(num_samples=2_000, num_real=2_000)
    named = chosen(num_real=5_000, metrics=["holes", "fid"])
    assert named.count("fd_infinity") == 1 and set(named) == {"fid", "holes", "fd_infinity"}
    assert "fd_infinity" not in chosen(num_samples=500, metrics=["precision_recall"])
    assert chosen(num_samples=500, metrics=["fid", "fd_infinity"]).count("fd_infinity") == 1
    # named in the spec itself, so that a results file's record says what was computed
    assert EvaluationSpec(extractor="pixels", num_real=2_000, metrics=["fid"]).metrics == [
        "fid",
        "fd_infinity",
    ]

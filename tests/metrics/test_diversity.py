"""Collision entropy, coverage, the distance bound, and the nearest-other-class distance."""

from __future__ import annotations

import math

import pytest
import torch

from latentzoo.metrics.diversity import (
    ClassDiversity,
    distance_bound,
    nearest_other_class_distance,
)


def test_uniform_histogram_reaches_log_k() -> None:
    metric = ClassDiversity(10)
    metric.update(torch.arange(10).repeat(7))
    out = metric.compute()
    assert float(out["h2"]) == pytest.approx(math.log(10))
    assert float(out["classes_covered"]) == 10
    h2 = math.log(10)
    assert float(out["distance_bound"]) == pytest.approx(
        math.log(4 * math.pi * h2) / math.sqrt(2 * h2)
    )


def test_skewed_histogram() -> None:
    metric = ClassDiversity(4)
    metric.update(torch.tensor([0, 0, 0, 1]))
    out = metric.compute()
    assert float(out["h2"]) == pytest.approx(-math.log(0.75**2 + 0.25**2))
    assert float(out["classes_covered"]) == 2
    assert math.isinf(float(distance_bound(torch.tensor(0.0))))


def test_out_of_range_labels_are_reported() -> None:
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 3\)"):
        ClassDiversity(3).update(torch.tensor([0, 3]))


def test_nearest_other_class_distance_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    z, labels = torch.randn(50, 3, generator=gen), torch.randint(0, 3, (50,), generator=gen)
    expected = (
        torch.stack(
            [
                min((z[i] - z[j]).norm() for j in range(50) if labels[j] != labels[i])
                for i in range(50)
            ]
        )
        .double()
        .mean()
    )
    got = nearest_other_class_distance(z, labels, chunk=7)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)

"""LatentVariance / active_units: Burda et al.'s active units, accumulated like under DDP."""

from __future__ import annotations

import pytest
import torch

from latentzoo.metrics.active_units import LatentVariance, active_units


def test_variance_over_batches_matches_torch_var():
    torch.manual_seed(0)
    codes = torch.randn(100, 4) * torch.tensor([0.01, 0.5, 2.0, 10.0]) + 3.0
    metric = LatentVariance(4)
    for chunk in codes.split(17):
        metric.update(chunk)
    torch.testing.assert_close(metric.compute(), codes.double().var(0))


def test_states_merged_across_ranks_equal_one_pass():
    """Two ranks' states reduced (sum) give the variance of all the codes together."""
    torch.manual_seed(0)
    codes = torch.randn(60, 3) * torch.tensor([1.0, 0.05, 3.0])
    rank0, rank1, whole = LatentVariance(3), LatentVariance(3), LatentVariance(3)
    rank0.update(codes[:25])
    rank1.update(codes[25:] + 0.0)
    whole.update(codes)
    rank0.merge_state(rank1)
    torch.testing.assert_close(rank0.compute(), whole.compute())


def test_active_units_counts_variances_above_threshold():
    assert active_units(torch.tensor([0.001, 0.02, 0.01, 5.0])) == 2
    assert active_units(torch.tensor([0.001, 0.02, 0.01, 5.0]), threshold=0.0) == 4


def test_wrong_code_shape_raises():
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        LatentVariance(4).update(torch.zeros(3, 5))

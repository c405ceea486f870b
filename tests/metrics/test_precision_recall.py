"""k-NN precision/recall: chunked torch against brute-force numpy and torch-fidelity, known cases,
and the torchmetrics state (sharded updates give the one-process numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_fidelity.metric_prc import calculate_precision_recall_full

from latentzoo.metrics.precision_recall import (
    PrecisionRecall,
    knn_radii,
    manifold_coverage,
    precision_recall,
)


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Eqs. (1)-(2) with full distance matrices and explicit loops over queries."""

    def radii(x: np.ndarray) -> np.ndarray:
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        return np.array([np.sort(np.delete(row, i))[k - 1] for i, row in enumerate(d)])

    def covered(queries: np.ndarray, ref: np.ndarray, rad: np.ndarray) -> float:
        hits = [any(np.linalg.norm(q - ref[j]) <= rad[j] for j in range(len(ref))) for q in queries]
        return float(np.mean(hits))

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_chunked_matches_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    real = rng.normal(size=(41, 3))
    fake = rng.normal(size=(37, 3)) * 0.7 + 1.0  # partly overlapping: both values in (0, 1)
    want = brute_force(real, fake, k)
    assert 0 < want[0] < 1 and 0 < want[1] < 1
    # chunk smaller than both sets and not dividing them, so every block boundary is crossed
    got = precision_recall(torch.from_numpy(real), torch.from_numpy(fake), k=k, chunk=7)
    assert (float(got[0]), float(got[1])) == pytest.approx(want, abs=1e-12)


def test_radii_ignore_the_point_itself_and_merge_blocks() -> None:
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0], [15.0]])
    # neighbours of 7: 3 (4), 1 (6), 0 (7), 15 (8); k = 2 -> 6
    torch.testing.assert_close(
        knn_radii(x, k=2, chunk=2), torch.tensor([3.0, 2.0, 3.0, 6.0, 12.0], dtype=torch.float64)
    )


def test_same_distribution_gives_high_precision_and_recall() -> None:
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2000, 4, generator=gen), torch.randn(2000, 4, generator=gen)
    precision, recall = precision_recall(real, fake)
    # k = 3 balls cover most, not all, of a sample's own distribution (the paper's fig. 2)
    assert float(precision) > 0.85 and float(recall) > 0.85
    assert float(precision_recall(real, real)[0]) == 1.0  # every point lies in its own ball


def test_samples_off_the_support_have_near_zero_precision() -> None:
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(1000, 8, generator=gen)
    fake = torch.randn(1000, 8, generator=gen) + 10.0
    precision, recall = precision_recall(real, fake)
    assert float(precision) < 0.01 and float(recall) < 0.01


def test_one_mode_of_two_halves_recall_but_keeps_precision() -> None:
    gen = torch.Generator().manual_seed(2)
    shift = torch.tensor([8.0, 0.0])
    real = torch.randn(2000, 2, generator=gen) + torch.where(
        torch.arange(2000)[:, None] % 2 == 0, shift, -shift
    )
    both = torch.randn(2000, 2, generator=gen) + torch.where(
        torch.arange(2000)[:, None] % 2 == 0, shift, -shift
    )
    one = torch.randn(2000, 2, generator=gen) + shift  # only the right-hand mode
    p_both, r_both = precision_recall(real, both)
    p_one, r_one = precision_recall(real, one)
    assert float(p_both) > 0.85 and float(r_both) > 0.85
    assert 0.4 < float(r_one) < 0.55  # at most the covered half of the real set
    assert float(p_one) > 0.85  # what it does generate is on the real manifold


def test_coverage_is_inclusive_at_the_radius() -> None:
    ref = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0 + 1e-9]], dtype=torch.float64)
    got = manifold_coverage(queries, ref, torch.tensor([1.0], dtype=torch.float64))
    assert got.tolist() == [True, False]


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="k < N"):
        knn_radii(torch.randn(3, 2), k=3)
    with pytest.raises(ValueError, match="dimensions differ"):
        precision_recall(torch.randn(10, 2), torch.randn(10, 3))
    with pytest.raises(ValueError, match="one radius per reference"):
        manifold_coverage(torch.randn(4, 2), torch.randn(5, 2), torch.ones(4))


def torch_fidelity_pr(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    """torch-fidelity's estimator of the same paper (its features_1 are the generated ones)."""
    return calculate_precision_recall_full(fake.double(), real.double(), neighborhood=k)


def metric_pr(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    metric = PrecisionRecall(k=k, chunk=64)  # several blocks for the larger cases
    metric.update(real, real=True)
    metric.update(fake, real=False)
    precision, recall = metric.compute()
    return float(precision), float(recall)


@pytest.mark.parametrize(
    ("n_real", "n_fake", "dim", "k", "shift", "scale"),
    [
        (200, 200, 2, 3, 1.0, 1.0),  # the paper's N = M, low dimension
        (150, 90, 16, 3, 0.5, 1.5),  # fewer, wider samples: recall > precision
        (120, 300, 8, 5, 0.0, 0.4),  # more, narrower samples (mode collapse-like)
        (100, 100, 64, 1, 0.3, 1.0),  # k = 1, high dimension
    ],
)
def test_metric_equals_torch_fidelity_on_overlapping_sets(
    n_real: int, n_fake: int, dim: int, k: int, shift: float, scale: float
) -> None:
    gen = torch.Generator().manual_seed(n_real + dim)
    real = torch.randn(n_real, dim, generator=gen, dtype=torch.float64)
    fake = torch.randn(n_fake, dim, generator=gen, dtype=torch.float64) * scale + shift
    want = torch_fidelity_pr(real, fake, k)
    assert any(0 < v < 1 for v in want)  # a partial overlap (mode collapse keeps precision 1)
    # torch-fidelity averages in float32; one point decided differently moves a value by 1/N
    assert metric_pr(real, fake, k) == pytest.approx(want, abs=1e-6)


def test_identical_sets_score_one_and_far_sets_zero_in_both_implementations() -> None:
    gen = torch.Generator().manual_seed(3)
    real = torch.randn(80, 5, generator=gen, dtype=torch.float64)
    assert metric_pr(real, real.clone(), 3) == (1.0, 1.0) == torch_fidelity_pr(real, real, 3)
    far = torch.randn(80, 5, generator=gen, dtype=torch.float64) + 100.0
    assert metric_pr(real, far, 3) == (0.0, 0.0) == torch_fidelity_pr(real, far, 3)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")  # states set, not updated
def test_sharded_updates_give_the_one_process_numbers() -> None:
    # What DDP's cat-reduction does: each rank's states, concatenated in rank order.
    gen = torch.Generator().manual_seed(4)
    real = torch.randn(90, 4, generator=gen)
    fake = torch.randn(70, 4, generator=gen) * 1.3 + 0.4
    one = metric_pr(real, fake, 3)
    shards = [PrecisionRecall(k=3), PrecisionRecall(k=3)]
    for rank, metric in enumerate(shards):  # uneven shards, as rank_share gives odd counts
        metric.update(real[:50] if rank == 0 else real[50:], real=True)
        metric.update(fake[:31] if rank == 0 else fake[31:], real=False)
    merged = PrecisionRecall(k=3)
    merged.real_features = [torch.cat([f for m in shards for f in m.real_features])]
    merged.fake_features = [torch.cat([f for m in shards for f in m.fake_features])]
    precision, recall = merged.compute()
    assert (float(precision), float(recall)) == one
    assert 0 < one[0] < 1 and 0 < one[1] < 1


def test_reset_keeps_real_features_only_when_asked() -> None:
    real, fake = torch.randn(20, 3), torch.randn(20, 3)
    kept, dropped = PrecisionRecall(reset_real_features=False), PrecisionRecall()
    for metric in (kept, dropped):
        metric.update(real, real=True)
        metric.update(fake, real=False)
        metric.compute()
        metric.reset()
        metric.update(fake, real=False)
    assert float(kept.compute()[0]) == float(precision_recall(real, fake)[0])
    with pytest.raises(RuntimeError, match="real and fake features"):
        dropped.compute()
    with pytest.raises(ValueError, match=r"\(B, D\) features"):
        dropped.update(torch.randn(4), real=True)

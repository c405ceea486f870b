"""Class diversity of generated samples, and the latent-distance bound it implies.

A classifier (the domain evaluator) labels n generated samples; p is their class histogram.

- Collision (Rényi-2) entropy H2 = -log sum_i p_i^2 = log(1 / ||p||^2), with 0 <= H2 <= log K,
  equality for the uniform histogram; ``exp(H2)`` is the "effective number of classes".
- Classes covered: the number of i with p_i > 0.
- The bound: under a N(0, I) prior, the expected distance from a latent point to the nearest
  point decoded into another class is at most

      log(4 pi H2) / sqrt(2 H2)     (H2 = log(1 / ||p||^2)),

  so the more diverse the samples, the closer the classes sit in latent space. It is only
  informative for H2 > 1 / (4 pi) (below that the log is negative and the bound is vacuous in the
  other direction); with a single class it is infinite.

:func:`nearest_other_class_distance` is the Monte-Carlo counterpart: for latent points with known
classes, the distance from each to the nearest pool point of another class (an upper estimate of
the true distance, tightening as the pool grows).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "ClassDiversity",
    "collision_entropy",
    "distance_bound",
    "nearest_other_class_distance",
]


def collision_entropy(p: Tensor) -> Tensor:
    """H2 = -log sum_i p_i^2 of a histogram p (normalised here), float64 scalar."""
    p = p.double() / p.sum()
    return -torch.log((p * p).sum())


def distance_bound(h2: Tensor) -> Tensor:
    """log(4 pi H2) / sqrt(2 H2); +inf when H2 = 0 (all samples in one class)."""
    h2 = h2.double()
    if h2 <= 0:
        return torch.tensor(math.inf, dtype=torch.float64)
    return torch.log(4 * math.pi * h2) / torch.sqrt(2 * h2)


def nearest_other_class_distance(z: Tensor, labels: Tensor, chunk: int = 2048) -> Tensor:
    """Mean over points of the distance to the nearest other point with another label.

    Args:
        z: (n, d) latent points.
        labels: (n,) their classes.
        chunk: Rows per block of the (n, n) distance matrix.

    Returns:
        Float64 scalar; +inf when every point has the same label.
    """
    z = z.double()
    best = torch.empty(len(z), dtype=torch.float64, device=z.device)
    for i in range(0, len(z), chunk):
        d = torch.cdist(z[i : i + chunk], z)  # (c, n)
        same = labels[i : i + chunk, None] == labels[None]  # (c, n)
        best[i : i + chunk] = d.masked_fill(same, math.inf).min(1).values
    return best.mean()


class ClassDiversity(Metric):
    """Counts of predicted classes summed over ranks; ``compute`` gives H2, coverage and the bound.

    Args:
        num_classes: K, the classifier's number of classes.
    """

    full_state_update = False
    counts: Tensor

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.add_state(
            "counts", torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, labels: Tensor) -> None:
        """Add (B,) predicted class indices."""
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"class indices must be in [0, {self.num_classes}), got {labels}")
        self.counts += torch.bincount(labels.long(), minlength=self.num_classes).double()

    def compute(self) -> dict[str, Tensor]:
        if self.counts.sum() == 0:
            raise RuntimeError("ClassDiversity has seen no samples")
        p = self.counts / self.counts.sum()  # (K,)
        h2 = collision_entropy(p)
        return {
            "h2": h2,
            "h2_max": torch.tensor(math.log(self.num_classes), dtype=torch.float64),
            "classes_covered": (p > 0).sum().double(),
            "distance_bound": distance_bound(h2),
            "histogram": p,
        }

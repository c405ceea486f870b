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

:func:`nearest_other_class_distance` is a Monte-Carlo counterpart: for latent points with known
classes, the distance from each to the nearest pool point of another class. It is biased upward
by the pool's spacing, which in d dimensions shrinks like n^(-1/d): with 16 latent dimensions
no affordable pool gets near the class boundaries. :func:`class_radius` searches for
the boundary itself instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "ClassDiversity",
    "class_radius",
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


LogitsFn = Callable[[Tensor], Tensor]  # (n, d) latent points -> (n, K) class logits


def class_radius(
    z: Tensor,
    logits_fn: LogitsFn,
    num_directions: int = 8,
    max_radius: float | None = None,
    steps: int = 16,
    bisections: int = 12,
    deepfool_iters: int = 10,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Distance from each latent point to the nearest point found with another class, (n,).

    The class of a point is ``logits_fn(z).argmax(1)`` (in latentzoo: the domain evaluator on
    the decoded image). Two searches, each ending on a point whose class was checked to differ,
    so every distance is an upper bound on the true one:

    1. DeepFool (Moosavi-Dezfooli et al. 2016) on the logits: steps to the nearest linearised
       class boundary until the class changes; exact in one step when the boundary is a
       hyperplane, whatever the dimension. Needs ``logits_fn`` to be differentiable.
    2. ``num_directions`` random unit directions, for boundaries the gradient misses.

    Along each direction a scan of ``steps`` points brackets the first change of class and
    ``bisections`` halvings narrow it; a direction is only searched up to the best distance found
    so far (``max_radius`` at first, default 4 + 2 sqrt(d)), so the random directions cost little
    once DeepFool has succeeded. Points with no other class found get +inf.

    Args:
        z: (n, d) latent points, e.g. draws of the model's prior.
        logits_fn: Latent points -> class logits; called on at most ``batch_size`` points.
        generator: A CPU generator for the random directions (the global one if None).
    """
    z = z.detach()
    n, d = z.shape
    cap = 4 + 2 * math.sqrt(d) if max_radius is None else max_radius

    def labels_of(points: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.cat([logits_fn(p).argmax(1) for p in points.split(batch_size)])

    own = labels_of(z)  # (n,)
    best = torch.full((n,), math.inf, dtype=z.dtype, device=z.device)
    adv = _deepfool(z, own, logits_fn, deepfool_iters, batch_size)  # (n, d)
    moved = (adv - z).norm(dim=1)
    hit = (labels_of(adv) != own) & (moved > 0)
    found = _first_change(z, (adv - z) / moved.clamp_min(1e-12)[:, None], own,
                          torch.where(hit, moved, 0.0), steps, bisections, labels_of)  # fmt: skip
    best = torch.minimum(best, torch.where(hit, found, math.inf))
    for _ in range(num_directions):
        v = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        v = v / v.norm(dim=1, keepdim=True)
        limit = torch.where(torch.isinf(best), cap, best)
        best = torch.minimum(best, _first_change(z, v, own, limit, steps, bisections, labels_of))
    return best


def _first_change(
    z: Tensor,
    v: Tensor,
    own: Tensor,
    limit: Tensor,
    steps: int,
    bisections: int,
    labels_of: Callable[[Tensor], Tensor],
) -> Tensor:
    """Smallest t in (0, limit] with a class other than ``own`` at z + t v, (n,); +inf if none."""
    n, d = z.shape
    ts = limit[:, None] * torch.arange(1, steps + 1, device=z.device) / steps  # (n, S)
    changed = labels_of((z[:, None] + ts[..., None] * v[:, None]).reshape(-1, d)).view(n, steps)
    changed = changed != own[:, None]  # (n, S)
    first = changed.double().argmax(1)  # the first True (0 where none: masked below)
    hi = ts.gather(1, first[:, None]).squeeze(1)
    lo = torch.where(first > 0, ts.gather(1, (first - 1).clamp_min(0)[:, None]).squeeze(1), 0.0)
    for _ in range(bisections):
        mid = (lo + hi) / 2
        other = labels_of(z + mid[:, None] * v) != own
        hi, lo = torch.where(other, mid, hi), torch.where(other, lo, mid)
    return torch.where(changed.any(1) & (limit > 0), hi, math.inf)


def _deepfool(z: Tensor, own: Tensor, logits_fn: LogitsFn, iters: int, batch_size: int) -> Tensor:
    """DeepFool's multi-class iterations from z; returns the last iterate, (n, d)."""
    # Evaluation runs under no_grad or inference mode; the gradients here are w.r.t. z only.
    with torch.inference_mode(False), torch.enable_grad():
        pairs = zip(z.split(batch_size), own.split(batch_size), strict=True)
        out = [_deepfool_batch(b.clone(), o.clone(), logits_fn, iters) for b, o in pairs]
    return torch.cat(out)


def _deepfool_batch(z0: Tensor, own: Tensor, logits_fn: LogitsFn, iters: int) -> Tensor:
    total = torch.zeros_like(z0)  # the accumulated step r
    x = z0
    for _ in range(iters):
        x = (z0 + 1.02 * total).requires_grad_(True)  # DeepFool's 2% overshoot
        logits = logits_fn(x)  # (n, K)
        active = logits.argmax(1) == own
        if not active.any():
            break
        grads = torch.stack([torch.autograd.grad(logits[:, k].sum(), x, retain_graph=True)[0]
                             for k in range(logits.shape[1])], 1)  # (n, K, d)  # fmt: skip
        idx = torch.arange(len(own), device=own.device)
        f = (logits - logits[idx, own][:, None]).detach()  # (n, K), <= 0 where active
        w = grads - grads[idx, own][:, None]  # (n, K, d)
        norm = w.norm(dim=2)  # (n, K)
        dist = (f.abs() / norm).masked_fill((norm == 0) | (f == 0), math.inf)
        dist[idx, own] = math.inf
        k = dist.argmin(1)
        step = (f.abs()[idx, k] + 1e-6) / norm[idx, k].pow(2).clamp_min(1e-12)
        r = step[:, None] * w[idx, k]  # (n, d)
        ok = active & torch.isfinite(dist[idx, k])
        total = total + torch.where(ok[:, None], r, 0.0)
    return (z0 + 1.02 * total).detach()


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

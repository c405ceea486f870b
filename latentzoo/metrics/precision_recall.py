"""k-NN precision and recall of generated samples (Kynkäänniemi et al. 2019).

"Improved Precision and Recall Metric for Assessing Generative Models", sec. 2, eqs. (1)-(2).
The manifold of a set of features Phi is approximated by the union of balls centred on each
feature, with radius the distance to its k-th nearest neighbour in the same set:

    f(phi, Phi) = 1  if  ||phi - phi'||_2 <= ||phi' - NN_k(phi')||_2  for some phi' in Phi,
    precision(Phi_r, Phi_g) = 1/|Phi_g| sum_{phi_g} f(phi_g, Phi_r),
    recall(Phi_r, Phi_g)    = 1/|Phi_r| sum_{phi_r} f(phi_r, Phi_g).

Precision is the fraction of generated samples that land on the real manifold (quality); recall
the fraction of real samples that land on the generated manifold (coverage). Unlike a Fréchet
distance, which compares only the first two moments, it sees samples that fall between the
modes or off a thin data manifold even when their mean and covariance are right. k = 3 is the
paper's default.

Pairwise distances are computed in (chunk x chunk) blocks with ``torch.cdist``, so 10,000 x
10,000 features need a few blocks of chunk^2 numbers, never the full matrix. They are computed in
float64 by default: ``cdist`` expands ||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2, whose round-off in
float32 can flip a comparison against a radius for nearby points.

:class:`PrecisionRecall` wraps them in a torchmetrics ``Metric``: both feature sets are list
states gathered with ``dist_reduce_fx="cat"`` (in rank order), so every rank computes the numbers
of the whole sets, the same as one process. It keeps every feature it is given, (N + M) x D
floats, and after a sync the whole sets on every rank.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = ["PrecisionRecall", "knn_radii", "manifold_coverage", "precision_recall"]


def _check(features: Tensor, name: str) -> None:
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"{name} must be (N, D) features with N >= 1, got {tuple(features.shape)}")


def knn_radii(
    features: Tensor, k: int = 3, chunk: int = 2048, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Distance from each row to its k-th nearest other row, (N, D) -> (N,).

    The point itself is the nearest at distance 0, so this is the (k + 1)-th smallest entry of
    its row of distances (duplicates count as neighbours at distance 0, as in the paper's code).
    Column blocks are merged with a running top-(k + 1).

    Args:
        features: (N, D) features, N > k.
        k: Neighbourhood size.
        chunk: Rows and columns per block; memory is O(chunk^2).
        dtype: Precision of the distances.
    """
    _check(features, "features")
    if not 1 <= k < len(features):
        raise ValueError(f"need 1 <= k < N = {len(features)} for k-NN radii, got k = {k}")
    f = features.detach().to(dtype)
    radii = torch.empty(len(f), dtype=dtype, device=f.device)
    for r0 in range(0, len(f), chunk):
        rows = f[r0 : r0 + chunk]  # (c, D)
        best = torch.empty(len(rows), 0, dtype=dtype, device=f.device)  # (c, <= k + 1)
        for c0 in range(0, len(f), chunk):
            block = torch.cdist(rows, f[c0 : c0 + chunk])  # (c, c')
            merged = torch.cat([best, block], dim=1)
            best = merged.topk(min(k + 1, merged.shape[1]), dim=1, largest=False).values
        radii[r0 : r0 + chunk] = best[:, k]
    return radii


def manifold_coverage(
    queries: Tensor,
    reference: Tensor,
    radii: Tensor,
    chunk: int = 2048,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Which queries lie in the union of balls B(reference_j, radii_j), (M, D) -> (M,) bool.

    This is f(phi, Phi) of eq. (1) for every query; its mean is precision (queries generated,
    reference real) or recall (queries real, reference generated).

    Args:
        queries: (M, D) points to test.
        reference: (N, D) ball centres.
        radii: (N,) ball radii, usually ``knn_radii(reference, k)``.
        chunk: Rows and columns per block; memory is O(chunk^2).
        dtype: Precision of the distances.
    """
    _check(queries, "queries")
    _check(reference, "reference")
    if queries.shape[1] != reference.shape[1]:
        raise ValueError(
            f"feature dimensions differ: queries {queries.shape[1]}, reference {reference.shape[1]}"
        )
    if radii.shape != (len(reference),):
        raise ValueError(
            f"need one radius per reference row, ({len(reference)},), got {tuple(radii.shape)}"
        )
    q, ref, rad = (t.detach().to(dtype) for t in (queries, reference, radii))
    inside = torch.zeros(len(q), dtype=torch.bool, device=q.device)
    for q0 in range(0, len(q), chunk):
        rows = q[q0 : q0 + chunk]  # (c, D)
        hit = torch.zeros(len(rows), dtype=torch.bool, device=q.device)
        for r0 in range(0, len(ref), chunk):
            dist = torch.cdist(rows, ref[r0 : r0 + chunk])  # (c, c')
            hit |= (dist <= rad[None, r0 : r0 + chunk]).any(dim=1)
        inside[q0 : q0 + chunk] = hit
    return inside


def precision_recall(
    real: Tensor,
    fake: Tensor,
    k: int = 3,
    chunk: int = 2048,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Improved precision and recall (eqs. 1-2) of ``fake`` against ``real``, scalars in [0, 1].

    Args:
        real: (N, D) real features (e.g. held-out data or their Inception features).
        fake: (M, D) generated features; the paper uses N = M (it affects both radii).
        k: Neighbourhood size for the radii of both sets.
        chunk: Rows and columns per distance block; memory is O(chunk^2).
        dtype: Precision of the distances.

    Returns:
        (precision, recall), float64 scalars.
    """
    _check(real, "real")
    _check(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real {real.shape[1]}, fake {fake.shape[1]}")
    real_radii = knn_radii(real, k, chunk, dtype)
    fake_radii = knn_radii(fake, k, chunk, dtype)
    precision = manifold_coverage(fake, real, real_radii, chunk, dtype).double().mean()
    recall = manifold_coverage(real, fake, fake_radii, chunk, dtype).double().mean()
    return precision, recall


class PrecisionRecall(Metric):
    """Improved precision and recall of generated against real features, DDP-correct.

    Feed each side with ``update(features, real=...)``; ``compute`` returns ``(precision,
    recall)`` of :func:`precision_recall` over everything gathered from every rank.

    Args:
        k: Neighbourhood size of the radii (the paper's default, 3).
        chunk: Rows and columns per distance block; memory is O(chunk^2).
        reset_real_features: Whether ``reset()`` also drops the real features. ``False`` keeps
            them across evaluations (only the generated side is redone), like FID's statistics.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    real_features: list[Tensor]
    fake_features: list[Tensor]

    def __init__(
        self, k: int = 3, chunk: int = 2048, reset_real_features: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if k < 1 or chunk < 1:
            raise ValueError(f"k and chunk must be >= 1, got k={k}, chunk={chunk}")
        self.k, self.chunk, self.reset_real_features = k, chunk, reset_real_features
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, features: Tensor, real: bool) -> None:
        """Add (B, D) features to one side; they are kept as given (dtype and device)."""
        if features.ndim != 2:
            raise ValueError(f"expected (B, D) features, got shape {tuple(features.shape)}")
        (self.real_features if real else self.fake_features).append(features.detach())

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(precision, recall)``, float64 scalars in [0, 1]."""
        if len(self.real_features) == 0 or len(self.fake_features) == 0:
            raise RuntimeError("PrecisionRecall needs update() with real and fake features first")
        real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
        return precision_recall(real, fake, self.k, self.chunk)

    def reset(self) -> None:
        kept = list(self.real_features)
        super().reset()
        if not self.reset_real_features:
            self.real_features = kept

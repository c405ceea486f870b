"""The built-in feature metrics (FID, KID, precision/recall) and the features they share.

Each is a pure function of the real and generated features of one extractor, registered with
its keys (:mod:`latentzoo.metrics.registry`):

- ``fid`` (Heusel et al. 2017, eq. 6): the Fréchet distance between Gaussians fitted to both
  sets (:func:`latentzoo.metrics.frechet.frechet_distance`); also on reconstructions;
- ``kid`` (Bińkowski et al. 2018, eq. 6): the unbiased MMD^2 with the cubic kernel
  k(a, b) = (a.b / d + 1)^3, mean and std over ``subsets`` random subsets of ``subset_size``;
- ``precision_recall`` (Kynkäänniemi et al. 2019): k-NN precision and recall;
- ``density_coverage`` (Naeem et al. 2020, eqs. 3-4): k-NN density and coverage, checked
  against the authors' ``prdc`` package in ``tests/metrics/test_density_coverage.py``.

:class:`FeatureSet` is the torchmetrics ``Metric`` that collects one side's features on every
rank and gathers them (in rank order, so DDP gives one process's numbers); the real side's
features are cached on disk by :func:`save_features` / :func:`load_features`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.image.kid import poly_mmd
from torchmetrics.utilities import dim_zero_cat

from latentzoo.metrics.frechet import frechet_distance_between
from latentzoo.metrics.precision_recall import knn_radii
from latentzoo.metrics.precision_recall import precision_recall as _precision_recall
from latentzoo.metrics.registry import (
    METRICS,
    MetricInfo,
    MetricKey,
    feature_metric_names,
    register_feature_metric,
)

__all__ = [
    "FeatureMetrics",
    "FeatureSet",
    "cache_key",
    "density_coverage",
    "fid",
    "kid",
    "kid_estimates",
    "load_features",
    "precision_recall",
    "save_features",
]


@register_feature_metric(
    "fid",
    (MetricKey("fid", ("sampler", "extractor"), "lower", "FID", plotted=True),),
    reconstructions=True,
)
def fid(real: Tensor, fake: Tensor, *, seed: int = 0) -> dict[str, Tensor]:
    """FID: Fréchet distance of Gaussians fitted to the two feature sets (float64)."""
    return {"fid": frechet_distance_between(real, fake)}


def kid_estimates(real: Tensor, fake: Tensor, subsets: int, subset_size: int, seed: int) -> Tensor:
    """KID's unbiased MMD^2 on ``subsets`` pairs of random subsets of ``subset_size``, (subsets,).

    Subset j draws ``randperm`` of the real, then of the fake set, from one generator seeded
    with ``seed``: the draws torchmetrics' ``KernelInceptionDistance`` makes after
    ``torch.manual_seed(seed)``, so the numbers are the same.
    """
    if min(len(real), len(fake)) < subset_size:
        raise ValueError(
            f"KID's subset_size {subset_size} exceeds the features given ({len(real)} real, "
            f"{len(fake)} generated)"
        )
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        r = real[torch.randperm(len(real), generator=gen)[:subset_size].to(real.device)]
        f = fake[torch.randperm(len(fake), generator=gen)[:subset_size].to(fake.device)]
        scores.append(poly_mmd(r, f, degree=3, gamma=None, coef=1.0))
    return torch.stack(scores)


@register_feature_metric(
    "kid",
    (
        MetricKey("kid", ("sampler", "extractor"), "lower", "KID"),
        MetricKey("kid_std", ("sampler", "extractor"), None, "KID std over subsets"),
    ),
)
def kid(
    real: Tensor, fake: Tensor, *, seed: int = 0, subsets: int = 100, subset_size: int = 1000
) -> dict[str, Tensor]:
    """KID: unbiased polynomial-kernel MMD^2, mean and std over random subsets.

    The subsets hold at most half of the smaller set: at ``subset_size`` >= N every subset is the
    whole set and the std over subsets reads ~0 whatever the sampling error (at N = 500 the
    former min(1000, N) gave 1e-7); at N / 2 it is an error bar (its size is checked against
    the spread over seeds).
    """
    size = max(2, min(subset_size, len(real) // 2, len(fake) // 2))
    scores = kid_estimates(real, fake, subsets, size, seed)
    return {"kid": scores.mean(), "kid_std": scores.std(unbiased=False)}


@register_feature_metric(
    "precision_recall",
    (
        MetricKey("precision", ("sampler", "extractor"), "higher", "precision", plotted=True),
        MetricKey("recall", ("sampler", "extractor"), "higher", "recall"),
    ),
)
def precision_recall(real: Tensor, fake: Tensor, *, seed: int = 0, k: int = 3) -> dict[str, Tensor]:
    """Improved precision (samples on the data's k-NN manifold) and recall (the reverse)."""
    if min(len(real), len(fake)) <= k:
        nan = torch.tensor(math.nan)
        return {"precision": nan, "recall": nan}
    precision, recall = _precision_recall(real, fake, k)
    return {"precision": precision, "recall": recall}


@register_feature_metric(
    "density_coverage",
    (
        MetricKey("density", ("sampler", "extractor"), "higher", "density"),
        MetricKey("coverage", ("sampler", "extractor"), "higher", "coverage"),
    ),
)
def density_coverage(
    real: Tensor, fake: Tensor, *, seed: int = 0, k: int = 5, chunk: int = 2048
) -> dict[str, Tensor]:
    """Density and coverage (Naeem et al. 2020): samples per real k-NN ball, share of balls hit.

    With real features X_1..X_N, generated Y_1..Y_M and B(X_i) the ball around X_i of radius
    its distance to its k-th nearest other real point,

        density  = 1/(k M) sum_j sum_i 1[Y_j in B(X_i)],
        coverage = 1/N sum_i 1[exists j: Y_j in B(X_i)].

    Density is 1 on average when the two sets are alike and grows where samples crowd into
    dense real regions; coverage, unlike recall, is robust to outliers among the generated
    samples, and with M = N and identical distributions it tends to 1 - (1/2)^k (0.969 at the
    authors' k = 5). Float64 distances, O(chunk * M) memory.
    """
    if len(real) <= k or len(fake) == 0:
        nan = torch.tensor(math.nan)
        return {"density": nan, "coverage": nan}
    real, fake = real.double(), fake.double()
    radii = knn_radii(real, k, chunk)  # (N,)
    inside = torch.zeros(len(fake), dtype=torch.float64, device=fake.device)  # balls per sample
    covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    for start in range(0, len(real), chunk):
        block = torch.cdist(real[start : start + chunk], fake) < radii[start : start + chunk, None]
        inside += block.sum(0)  # (M,)
        covered[start : start + chunk] = block.any(1)
    return {"density": inside.mean() / k, "coverage": covered.double().mean()}


class FeatureMetrics:
    """The feature metrics of one evaluation: registered names, their options, one seed.

    Args:
        names: Registered feature metrics (None: every one).
        options: Per metric, its keyword arguments.
        seed: Passed to every metric (KID's subsets).
    """

    def __init__(
        self,
        names: Sequence[str] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        self.infos = [self._info(n) for n in (feature_metric_names() if names is None else names)]
        options = options or {}
        self.options = {i.name: dict(options.get(i.name, {})) for i in self.infos}
        self.seed = seed

    @staticmethod
    def _info(name: str) -> MetricInfo:
        info = METRICS.get(name)
        if info.kind != "features":
            raise ValueError(
                f"{name!r} is a model metric, not one of features; feature metrics: "
                f"{', '.join(feature_metric_names(defaults_only=False))}"
            )
        return info

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.infos]

    def add(self, name: str, **options: Any) -> None:
        """Compute one more registered feature metric (if it is not computed already)."""
        if name not in self.names:
            self.infos.append(self._info(name))
            self.options[name] = dict(options)

    def without(self, name: str) -> None:
        """Drop one metric (it cannot be measured in this setting)."""
        self.infos = [i for i in self.infos if i.name != name]
        self.options.pop(name, None)

    def wants_reconstructions(self) -> bool:
        return any(i.reconstructions for i in self.infos)

    def compute(
        self, real: Tensor, fake: Tensor, reconstructions: bool = False
    ) -> dict[str, Tensor]:
        """Every metric's values for ``fake`` against ``real`` features; with
        ``reconstructions``, those that apply to reconstructions, keys suffixed ``_recon``."""
        values: dict[str, Tensor] = {}
        for info in self.infos:
            if reconstructions and not info.reconstructions:
                continue
            out = info.compute(real, fake, seed=self.seed, **self.options[info.name])
            suffix = "_recon" if reconstructions else ""
            values |= {f"{k}{suffix}": torch.as_tensor(v) for k, v in out.items()}
        return values


class FeatureSet(Metric):
    """One side's features, gathered over ranks in rank order.

    Feed it with one ``update`` per rank and evaluation (concatenate the batches first):
    torchmetrics gathers list states entry by entry, so ranks with different numbers of entries
    would hang. ``compute`` returns the (N, F) features of every rank.
    """

    full_state_update = False
    features: list[Tensor]

    def __init__(self, num_features: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_features = num_features
        self.add_state("features", [], dist_reduce_fx="cat")

    def update(self, features: Tensor) -> None:
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"expected (B, {self.num_features}) features, got shape {tuple(features.shape)}"
            )
        self.features.append(features.detach().float())

    def compute(self) -> Tensor:
        features = self.features  # a list before a DDP sync, one tensor after it
        if isinstance(features, list) and not features:
            return torch.empty(0, self.num_features, device=self.device)
        return dim_zero_cat(features)


def cache_key(**parts: Any) -> str:
    """A short hash of everything that determines the real features (JSON, sorted keys)."""
    blob = json.dumps({"format": 2, **parts}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_features(path: Path, features: Tensor, meta: dict[str, Any]) -> None:
    """Write (N, F) features atomically (temp file + rename): a crash never leaves half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"features": features.cpu(), "meta": meta}, tmp)
    tmp.replace(path)


def load_features(path: Path) -> Tensor | None:
    """The cached features, or None when there is no usable file (absent, or unreadable: it
    is then recomputed and rewritten)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError):
        return None
    features = saved.get("features") if isinstance(saved, dict) else None
    if not isinstance(features, Tensor) or features.ndim != 2 or not features.isfinite().all():
        return None
    return features

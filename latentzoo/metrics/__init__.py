"""Metrics: pure functions, and torchmetrics ``Metric`` objects whose state syncs across ranks.

Importing this package registers the built-in feature metrics (:mod:`.features`,
:mod:`.fd_infinity`) in :data:`latentzoo.metrics.registry.METRICS`.
"""

from latentzoo.metrics.active_units import LatentVariance, active_units
from latentzoo.metrics.diversity import ClassDiversity, collision_entropy, distance_bound
from latentzoo.metrics.fd_infinity import fd_infinity
from latentzoo.metrics.fid import FrechetDistance, KernelDistance
from latentzoo.metrics.frechet import frechet_distance, frechet_distance_between, mean_cov
from latentzoo.metrics.holes import AggregatedPosteriorHoles, hole_stats
from latentzoo.metrics.intrinsic_dim import intrinsic_dim, local_inverse_dim
from latentzoo.metrics.precision_recall import (
    PrecisionRecall,
    knn_radii,
    manifold_coverage,
    precision_recall,
)

__all__ = [
    "AggregatedPosteriorHoles",
    "ClassDiversity",
    "FrechetDistance",
    "KernelDistance",
    "LatentVariance",
    "PrecisionRecall",
    "active_units",
    "collision_entropy",
    "distance_bound",
    "fd_infinity",
    "frechet_distance",
    "frechet_distance_between",
    "hole_stats",
    "intrinsic_dim",
    "knn_radii",
    "local_inverse_dim",
    "manifold_coverage",
    "mean_cov",
    "precision_recall",
]

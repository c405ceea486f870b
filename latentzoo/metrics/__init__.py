"""Metrics: pure functions, and torchmetrics ``Metric`` objects whose state syncs across ranks."""

from latentzoo.metrics.active_units import LatentVariance, active_units
from latentzoo.metrics.frechet import frechet_distance, frechet_distance_between, mean_cov

__all__ = [
    "LatentVariance",
    "active_units",
    "frechet_distance",
    "frechet_distance_between",
    "mean_cov",
]

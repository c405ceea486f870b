"""Callbacks: when to measure a model and what to log (FID, holes, active dimensions,
diversity, pictures), and what a model samples its latent codes from.

Write your own evaluation on :class:`PeriodicEvaluation` (see ``docs/evaluation.md``).
"""

from latentzoo.callbacks.active_dims import ActiveDims
from latentzoo.callbacks.base import PeriodicEvaluation, Stage
from latentzoo.callbacks.checkpoint import LastCheckpoint
from latentzoo.callbacks.diversity import DiversityCallback
from latentzoo.callbacks.fid import FIDCallback
from latentzoo.callbacks.guard import FiniteLossGuard, NonFiniteLossError
from latentzoo.callbacks.holes import HolesCallback
from latentzoo.callbacks.latent_sampler import LatentSampler
from latentzoo.callbacks.samples import SampleImages

__all__ = [
    "ActiveDims",
    "DiversityCallback",
    "FIDCallback",
    "FiniteLossGuard",
    "HolesCallback",
    "LastCheckpoint",
    "LatentSampler",
    "NonFiniteLossError",
    "PeriodicEvaluation",
    "SampleImages",
    "Stage",
]

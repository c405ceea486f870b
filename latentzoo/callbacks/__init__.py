"""Callbacks: when to measure a model and what to log (FID, holes, diversity, pictures)."""

from latentzoo.callbacks.diversity import DiversityCallback
from latentzoo.callbacks.fid import FIDCallback
from latentzoo.callbacks.holes import HolesCallback
from latentzoo.callbacks.samples import SampleImages

__all__ = ["DiversityCallback", "FIDCallback", "HolesCallback", "SampleImages"]

"""Callbacks: when to measure and what to log, and what a model samples from."""

from latentzoo.callbacks.latent_sampler import LatentSampler

__all__ = ["LatentSampler"]

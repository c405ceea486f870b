"""Callbacks: when to measure and what to log (active dims, ...)."""

from latentzoo.callbacks.active_dims import ActiveDims

__all__ = ["ActiveDims"]

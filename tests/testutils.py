"""Constants and helpers shared by test modules (``tests/`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

from pathlib import Path

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")

IMAGE_SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64)]
ALL_SHAPES = [*IMAGE_SHAPES, (128,)]

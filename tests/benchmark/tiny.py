"""A tiny suite (synthetic vectors, a few seconds a cell) and a way to run the real command."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from testutils import run_python

TINY_SUITE: dict[str, Any] = {
    "name": "tiny",
    "description": "two small models on tiny synthetic data",
    "expected_time": "seconds",
    "data": {
        "class_path": "latentzoo.datamodules.Synthetic",
        "init_args": {
            "latent_dim": 2,
            "data_dim": 8,
            "hidden": 16,
            "num_train": 512,
            "num_test": 256,
            "val_size": 64,
            "batch_size": 64,
        },
    },
    "trainer": {"max_epochs": 2, "limit_val_batches": 1, "accelerator": "cpu"},
    "common": {"latent_dim": 2, "width": 4},
    "seeds": [0],
    "models": [
        {"name": "VAE", "class_path": "latentzoo.zoo.VAE"},
        {"name": "WAE", "class_path": "WAEGP", "recipe": "registered name"},
    ],
    "samplers": ["prior", "gmm"],
    "metrics": {"extractors": ["pixels"], "num_samples": 200, "num_real": 200},
}


def latentzoo(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m latentzoo ARGS`` in a real process the test owns; its output captured."""
    return run_python("-m", "latentzoo", *args, cwd=cwd, timeout=timeout)

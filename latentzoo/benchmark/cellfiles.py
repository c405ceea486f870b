"""Where a benchmark cell keeps its files, and what they say about its state.

    OUT/cells/<cell>/config.yaml                      the complete ``latentzoo fit`` config
    OUT/cells/<cell>/version_0/checkpoints/last.ckpt  its run (TensorBoard logs beside)
    OUT/cells/<cell>/trained.json                     written when training finished
    OUT/cells/<cell>/failed.json                      the last failed attempt (exit code, output)
    OUT/cells/<cell>/scores/<sampler>.json            the metrics of one sampler
    OUT/cells/<cell>/media/                           sample figures and the holes picture

A cell is *scored* when every sampler's scores exist, measured under its evaluation spec (the
suite's ``metrics:`` section: extractors, metrics, sample counts, split, seed); *trained* when
``trained.json`` exists or, for a run trained elsewhere with plain ``latentzoo fit --config``,
its ``last.ckpt`` has reached the budget; *partial* when it has a
``last.ckpt`` short of the budget (resumed from it); *failed* when its last attempt failed;
else *new*.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from latentzoo.benchmark.schema import Cell, spec_record

__all__ = ["CellFiles", "Status", "write_json"]

Status = Literal["scored", "trained", "partial", "failed", "new"]


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically (non-finite floats as ``null``)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return [clean(x) for x in v] if isinstance(v, list | tuple) else v

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(clean(value), indent=1, default=str))
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):  # not UTF-8, not JSON: as if it were not there
        warnings.warn(f"{path} is not a readable JSON file; its cell is done again", stacklevel=2)
        return None
    return value if isinstance(value, dict) else None


class CellFiles:
    """The files of one cell under ``out``."""

    def __init__(self, cell: Cell, out: Path) -> None:
        self.cell, self.out = cell, out
        self.dir = out / "cells" / cell.name
        self.config = self.dir / "config.yaml"
        self.last = self.dir / "version_0" / "checkpoints" / "last.ckpt"
        self.trained = self.dir / "trained.json"
        self.failed = self.dir / "failed.json"
        self.log = self.dir / "fit.log"
        self.media = self.dir / "media"

    def scores(self, sampler: str) -> Path:
        return self.dir / "scores" / f"{sampler}.json"

    def samples_png(self, sampler: str) -> Path:
        return self.media / f"samples_{sampler}.png"

    @property
    def holes_png(self) -> Path:
        return self.media / "holes.png"

    def write_config(self, progress_bar: bool = False) -> bool:
        """Write ``config.yaml``; returns whether an existing one said something else."""
        text = "# latentzoo fit --config <this file>  (a cell of latentzoo benchmark)\n"
        text += yaml.safe_dump(self.cell.config(self.out, progress_bar), sort_keys=False)
        old = self.config.read_text() if self.config.is_file() else None
        if old != text:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.config.write_text(text)
        return old is not None and old != text

    def scored(self, sampler: str) -> bool:
        """Whether ``sampler``'s scores exist, measured under this cell's evaluation spec (a
        file written before scores recorded their spec: under its extractors and counts)."""
        found = read_json(self.scores(sampler))
        if found is None:
            return False
        spec = self.cell.metrics
        if "spec" not in found:
            return (
                found.get("extractors") == list(spec.extractors)
                and found.get("num_samples") == spec.num_samples
                and found.get("num_real") == spec.num_real
            )
        return bool(found["spec"] == json.loads(json.dumps(spec_record(spec))))

    def status(self, samplers: Sequence[str]) -> Status:
        if self.trained.is_file() and all(self.scored(s) for s in samplers):
            return "scored"
        if self.trained.is_file():
            return "trained"
        if self.last.is_file() and self.reached_budget():
            return "trained"
        if self.failed.is_file():
            return "failed"
        return "partial" if self.last.is_file() else "new"

    def progress(self) -> tuple[int, int]:
        """(epochs trained, global step) of ``last.ckpt``.

        Epochs are the fit loop's ``processed`` count: ``LastCheckpoint`` saves the last epoch in
        ``on_train_epoch_end``, before Lightning counts it ``completed``.
        """
        ckpt = torch.load(self.last, map_location="cpu", weights_only=False)
        loop = ckpt.get("loops", {}).get("fit_loop", {})
        epochs = loop.get("epoch_progress", {}).get("current", {}).get("processed")
        return int(ckpt["epoch"] if epochs is None else epochs), int(ckpt["global_step"])

    def reached_budget(self) -> bool:
        """Whether ``last.ckpt`` has trained the suite's ``max_epochs`` or ``max_steps``."""
        trainer = self.cell.fit["trainer"]
        epochs, steps = self.progress()
        max_steps = trainer.get("max_steps")
        if max_steps is not None and max_steps >= 0 and steps >= max_steps:
            return True
        return trainer.get("max_epochs") is not None and epochs >= trainer["max_epochs"]

    def record_trained(self, wall_s: float | None, resumed: bool, source: str) -> None:
        epochs, steps = self.progress()
        write_json(
            self.trained,
            {
                "wall_s": wall_s,
                "epochs": epochs,
                "global_step": steps,
                "resumed": resumed,
                "source": source,
            },
        )
        self.failed.unlink(missing_ok=True)

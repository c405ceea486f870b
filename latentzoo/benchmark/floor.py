"""The real-vs-real floor of a suite's table: what its feature metrics read between two real
samples, at the same N, split, extractor and seed as the models' rows.

FID, KID and precision/recall are biased by the sample count (FID upward, by an amount that
depends on N and the feature dimension); a model's number means little until it is read against
the number two real samples of the same size give. For every data set of a suite (each grid
point's, when the grid changes the data) the floor compares the first ``num_samples`` training
images, standing in for a model's samples, with the reference split (``split``, as the models'
rows), with every feature metric of the suite's spec. It is computed once, written to
``OUT/floors/<key>.json``, and shown as the first row of the table, ``real data``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentzoo.benchmark.cellfiles import read_json, write_json
from latentzoo.benchmark.schema import EVALUATOR_PENDING, Cell, Suite, spec_record
from latentzoo.datamodules import DATAMODULES
from latentzoo.evaluation import score_samples
from latentzoo.metrics.registry import METRICS

__all__ = ["FLOOR_MODEL", "floor_path", "measure_floors", "read_floor"]

FLOOR_MODEL = "real data"  # the table row's label


def _floor_record(cell: Cell) -> dict[str, Any]:
    record = spec_record(cell.metrics)
    for name in ("sampler", "seed", "sampler_options"):
        record.pop(name, None)
    return {"data": cell.fit["data"], "spec": record}


def floor_path(out: Path, cell: Cell) -> Path:
    """Where the floor of ``cell``'s data set and spec is kept."""
    blob = json.dumps(_floor_record(cell), sort_keys=True, default=str).encode()
    return out / "floors" / f"{hashlib.sha256(blob).hexdigest()[:16]}.json"


def read_floor(out: Path, cell: Cell) -> dict[str, float] | None:
    """The floor's values for ``cell``'s data set and spec, if measured."""
    found = read_json(floor_path(out, cell))
    return None if found is None else found.get("metrics")


def measure_floors(
    suite: Suite,
    cells: list[Cell],
    out: Path,
    evaluator_for: Callable[[dict[str, Any]], Path],
    accelerator: str,
) -> None:
    """Measure every floor ``cells`` need that is not on disk yet (seeded with the suite's
    first seed); ``evaluator_for(data)`` gives the domain evaluator of a data spec."""
    done: set[Path] = set()
    for cell in cells:
        path = floor_path(out, cell)
        if path in done or path.is_file():
            continue
        done.add(path)
        data = cell.fit["data"]
        spec = cell.metrics
        if spec.evaluator == EVALUATOR_PENDING:
            spec = dataclasses.replace(spec, evaluator=str(evaluator_for(data)))
        spec = dataclasses.replace(spec, sampler="prior", seed=suite.seeds[0])
        if spec.metrics is not None:  # a model's metrics (holes, active dims) have no floor
            features = [n for n in spec.metrics if "model" not in METRICS.get(n).needs]
            if not features:
                continue
            spec = dataclasses.replace(spec, metrics=features)
        datamodule = DATAMODULES.resolve(data["class_path"])(**data["init_args"])
        train = datamodule.split_tensors("train")[0][: spec.num_samples]
        device = "cuda" if accelerator == "gpu" else "cpu"
        results = score_samples(train, datamodule, spec, device=device, progress=False)
        record = {**_floor_record(cell), "protocol": results.protocol()}
        write_json(path, {**record, "metrics": results.rows["samples"]})

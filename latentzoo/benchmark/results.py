"""The results table of a suite: every (model, grid point, sampler) row with the mean and standard
deviation of each metric over the seeds whose scores exist, written as ``results.csv`` and
``results.json``; the suite, extractors, sample counts, seeds, data and budget head both."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentzoo.benchmark.cellfiles import CellFiles, read_json, write_json
from latentzoo.benchmark.floor import FLOOR_MODEL, read_floor
from latentzoo.benchmark.schema import Cell, Suite, spec_record
from latentzoo.evaluation.results import split_column
from latentzoo.metrics.extractors import EXTRACTORS, weights_id
from latentzoo.metrics.registry import key_info

__all__ = [
    "NOT_APPLICABLE",
    "Row",
    "collect_rows",
    "extractor_weights",
    "grid_value",
    "results_header",
    "suite_header",
    "write_results",
]

NOT_APPLICABLE = "n/a"  # a number its metric reported as not applicable to the row (NaN)


@dataclass
class Row:
    """One model at one grid point under one sampler, over its seeds."""

    model: str
    point: str
    grid: dict[str, Any]  # the grid point's values, a class spec as its class name
    sampler: str
    cells: list[Cell] = field(default_factory=list)  # the cells with scores
    stats: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    floor: bool = False  # the real-vs-real row of its grid point (benchmark.floor)
    # Keys every seed reported as NaN whose declaration says NaN means "does not apply" (the
    # class-distance bound under a sampler other than N(0, I)): written "n/a", not left empty.
    not_applicable: set[str] = field(default_factory=set)
    # Per scored cell, what its scores recorded of each extractor (source, convention, weights).
    extractor_records: list[dict[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def n_seeds(self) -> int:
        return 1 if self.floor else len(self.cells)

    @property
    def label(self) -> str:
        return "__".join(p for p in (self.model, self.point, self.sampler) if p)


def grid_value(value: Any) -> Any:
    """A grid value as one table entry: a ``{class_path, ...}`` as the class name."""
    if isinstance(value, dict):
        return str(value.get("class_path", value)).rsplit(".", 1)[-1]
    return value if isinstance(value, int | float | str) else str(value)


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    finite = [v for v in values if v is not None]
    if not finite:
        return None, None
    std = statistics.stdev(finite) if len(finite) > 1 else None  # sample std (n - 1)
    return statistics.fmean(finite), std


def _nan_means_not_applicable(columns: list[str], extractors: list[str]) -> set[str]:
    """The columns whose key declares NaN as "does not apply"."""
    declared = key_info()
    keys = {c: declared.get(split_column(c, extractors)[0]) for c in columns}
    return {c for c, info in keys.items() if info is not None and info.not_applicable}


def collect_rows(suite: Suite, out: Path) -> list[Row]:
    """The rows, in the suite's order, from ``OUT/cells/*/scores/*.json``."""
    extractors = list(dict.fromkeys(e for c in suite.cells for e in c.metrics.extractors))
    rows: dict[tuple[str, str, str], Row] = {}
    for cell in suite.cells:
        for sampler in suite.samplers:
            key = (cell.model, cell.point, sampler)
            if key not in rows:
                grid = {k: grid_value(v) for k, v in cell.grid.items()}
                rows[key] = Row(cell.model, cell.point, grid, sampler)
            if CellFiles(cell, out).scored(sampler):
                rows[key].cells.append(cell)
    scores = [  # (row, the score files of its cells), each file read once
        (row, [s for c in row.cells if (s := read_json(CellFiles(c, out).scores(row.sampler)))])
        for row in rows.values()
    ]
    columns = list(dict.fromkeys(k for _, found in scores for s in found for k in s["metrics"]))
    nan_is_na = _nan_means_not_applicable(columns, extractors)
    for row, found in scores:
        metrics = [s["metrics"] for s in found]
        names = list(dict.fromkeys(k for m in metrics for k in m))
        row.stats = {k: _mean_std([m.get(k) for m in metrics]) for k in names}
        row.not_applicable = {
            k for k in names if k in nan_is_na and all(k in m and m[k] is None for m in metrics)
        }  # NaN is stored as null
        row.extractor_records = [s.get("protocol", {}).get("extractors", {}) for s in found]
    return _floor_rows(suite, out) + list(rows.values())


def _floor_rows(suite: Suite, out: Path) -> list[Row]:
    """The real-vs-real row of each grid point whose floor was measured, first."""
    rows, seen = [], set()
    for cell in suite.cells:
        if cell.point in seen:
            continue
        seen.add(cell.point)
        values = read_floor(out, cell)
        if values is None:
            continue
        grid = {k: grid_value(v) for k, v in cell.grid.items()}
        stats: dict[str, tuple[float | None, float | None]] = {
            k: (v, None) for k, v in values.items()
        }
        vs = f"train vs {cell.metrics.split}"
        rows.append(Row(FLOOR_MODEL, cell.point, grid, vs, stats=stats, floor=True))
    return rows


def suite_header(suite: Suite) -> dict[str, Any]:
    """What every number in the table depends on."""
    spec = spec_record(suite.metrics)
    return {
        "suite": suite.name,
        "description": suite.description,
        "extractors": list(dict.fromkeys(e for c in suite.cells for e in c.metrics.extractors)),
        "num_samples": spec["num_samples"],
        "num_real": spec["num_real"],
        "reference_split": spec["split"],
        "metrics": spec["metrics"] or "every default metric that applies",
        "metric_options": spec["metric_options"],
        "seeds": suite.seeds,
        "samplers": suite.samplers,
        "data": suite.data,
        "budget": suite.trainer,
        "std": "sample standard deviation over seeds (n - 1); empty with one seed",
    }


def metric_names(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r.stats))


def _recorded(rows: list[Row], field: str) -> dict[str, list[str]]:
    """Extractor -> the distinct values of one field of its record in the scored cells' protocol,
    in the order first seen."""
    seen: dict[str, dict[str, None]] = {}
    for row in rows:
        for records in row.extractor_records:
            for name, info in records.items():
                if info.get(field):
                    seen.setdefault(name, {})[info[field]] = None
    return {name: list(values) for name, values in seen.items()}


def extractor_conventions(rows: list[Row]) -> dict[str, list[str]]:
    """Extractor -> the distinct conventions its scored cells record (layer, resize, the domain
    evaluator's test accuracy), in the order first seen."""
    return _recorded(rows, "convention")


def extractor_weights(rows: list[Row], out: Path, extractors: list[str]) -> dict[str, list[str]]:
    """Extractor -> the weights its scored cells record (file name, SHA-256 prefix). Domain
    features scored before cells recorded them: the suite's evaluator file, as collected."""
    found = _recorded(rows, "weights")
    if "domain" in extractors and "domain" not in found:
        files = sorted((out / "evaluators").glob("*.ckpt"))
        if files:
            found["domain"] = [f"{weights_id(f)} (the file at collection)" for f in files]
    return found


def scored_extractors(rows: list[Row]) -> list[str]:
    """The extractors of the scored cells, in the suite's order."""
    return list(dict.fromkeys(e for r in rows for c in r.cells for e in c.metrics.extractors))


def extractor_resize(extractors: list[str]) -> dict[str, str]:
    """Extractor -> how it resizes images, in words (its class's ``resize``)."""
    return {n: EXTRACTORS.get(n).resize for n in extractors if n in EXTRACTORS}


def results_header(suite: Suite, rows: list[Row], out: Path) -> dict[str, Any]:
    """The protocol of every number of the table: :func:`suite_header`, then each extractor's
    conventions as its scored cells recorded them, its resize, and the domain evaluator's weights.
    """
    header = suite_header(suite)
    extractors = scored_extractors(rows)
    header["extractor_conventions"] = extractor_conventions(rows)
    header["extractor_resize"] = extractor_resize(extractors)
    header["extractor_weights"] = extractor_weights(rows, out, extractors)
    return header


def _csv_cells(row: Row, name: str) -> tuple[str, str]:
    """A metric's mean and std as results.csv writes them."""
    if name in row.not_applicable:
        return NOT_APPLICABLE, ""
    mean, std = row.stats.get(name, (None, None))
    return ("" if mean is None else f"{mean:.6g}"), ("" if std is None else f"{std:.6g}")


def write_results(suite: Suite, rows: list[Row], out: Path, failed: list[str]) -> None:
    """``results.csv`` (``#`` comment lines, then the table) and ``results.json``."""
    header, names = results_header(suite, rows, out), metric_names(rows)
    grid_keys = suite.grid_keys
    buf = io.StringIO()
    for key, value in header.items():
        buf.write(f"# {key}: {value}\n")
    writer = csv.writer(buf, lineterminator="\n")
    stat_cols = [f"{n}_{s}" for n in names for s in ("mean", "std")]
    writer.writerow(["model", "point", *grid_keys, "sampler", "n_seeds", *stat_cols])
    for r in rows:
        stats = [text for n in names for text in _csv_cells(r, n)]
        grid = [r.grid.get(k, "") for k in grid_keys]
        writer.writerow([r.model, r.point, *grid, r.sampler, r.n_seeds, *stats])
    (out / "results.csv").write_text(buf.getvalue())
    write_json(
        out / "results.json",
        {
            **header,
            "failed_cells": failed,
            "rows": [
                {
                    "model": r.model,
                    "point": r.point,
                    "grid": r.grid,
                    "sampler": r.sampler,
                    "n_seeds": r.n_seeds,
                    "cells": [c.name for c in r.cells],
                    "metrics": {
                        k: {"mean": NOT_APPLICABLE, "std": None}
                        if k in r.not_applicable
                        else {"mean": m, "std": s}
                        for k, (m, s) in r.stats.items()
                    },
                }
                for r in rows
            ],
        },
    )

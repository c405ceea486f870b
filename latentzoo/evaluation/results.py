"""What an evaluation measured: per sampler, the values of every metric key, named by the keys'
own declarations (:mod:`latentzoo.metrics.registry`).

A key that varies with the extractor becomes one column per extractor, ``<key>_<extractor>``
(``fid_inception``, ``fid_recon_domain``); a key of the model alone (holes, active dimensions,
the model's test losses) is measured once and stands in every sampler's row. The protocol
(sample counts, reference split, extractors and their weights, seed) travels with the values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentzoo.evaluation.spec import EvaluationSpec
from latentzoo.metrics.registry import MetricKey, key_info

__all__ = ["Results", "column_name", "split_column"]


def column_name(key: str, extractor: str | None) -> str:
    """``fid`` with extractor ``inception`` -> ``fid_inception``; a key of the model: itself."""
    return key if extractor is None else f"{key}_{extractor}"


def split_column(column: str, extractors: Sequence[str]) -> tuple[str, str | None]:
    """The (key, extractor) a column was named from, for the extractors of one evaluation."""
    declared = key_info()
    for extractor in extractors:
        key = column.removesuffix(f"_{extractor}")
        if key != column and key in declared and "extractor" in declared[key].varies:
            return key, extractor
    return column, None


@dataclass
class Results:
    """The values of one evaluation, a row per sampler.

    Attributes:
        spec: What was measured (the protocol).
        rows: Sampler -> column -> value (NaN where a metric gave none).
        pictures: ``samples_<sampler>`` and ``holes`` -> the PNG file, when an output folder
            was given.
        sources: Extractor name -> what its features were computed with (weights' identity).
        conventions: Extractor name -> its convention in words (layer, resize, the domain
            evaluator's test accuracy).
        weights: Extractor name -> its weights' file name and SHA-256 prefix (empty: none).
        num_real: The real samples actually compared (``spec.num_real``, or fewer when the
            split holds fewer).
    """

    spec: EvaluationSpec
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    pictures: dict[str, Path] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    conventions: dict[str, str] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)  # extractor -> its weights' identity
    num_real: int | None = None

    @property
    def columns(self) -> list[str]:
        """Every column, in the order the rows hold them."""
        return list(dict.fromkeys(c for row in self.rows.values() for c in row))

    def key(self, column: str) -> MetricKey | None:
        """The declaration of a column's key (None for the model's own losses)."""
        return key_info().get(split_column(column, self.spec.extractors)[0])

    def values(self, sampler: str, qualified: bool = True) -> dict[str, float]:
        """One sampler's row; ``qualified=False`` names columns by their key alone (one
        extractor only)."""
        row = self.rows[sampler]
        if qualified:
            return dict(row)
        if len(self.spec.extractors) > 1:
            raise ValueError("unqualified columns need a single extractor")
        return {split_column(c, self.spec.extractors)[0]: v for c, v in row.items()}

    def protocol(self) -> dict[str, Any]:
        """What every number depends on, for a results file's header."""
        spec = self.spec
        return {
            "samplers": spec.samplers,
            "extractors": {
                e: {
                    "source": self.sources.get(e, e),
                    "convention": self.conventions.get(e, ""),
                    "weights": self.weights.get(e, ""),
                }
                for e in spec.extractors
            },
            "num_samples": spec.num_samples,
            "num_real": self.num_real if self.num_real is not None else spec.num_real,
            "reference_split": spec.split,
            "seed": spec.seed,
            "metric_options": spec.metric_options,
            "sampler_options": spec.sampler_options,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the protocol, the rows (non-finite values as None), the pictures."""
        return {
            "protocol": self.protocol(),
            "rows": {s: {c: _finite(v) for c, v in row.items()} for s, row in self.rows.items()},
            "pictures": {k: str(p) for k, p in self.pictures.items()},
        }

    def table(self, title: str) -> str:
        """The rows as aligned text: one block per sampler."""
        lines = [title]
        for sampler, row in self.rows.items():
            if len(self.rows) > 1:
                lines.append(f" sampler {sampler}")
            width = max((len(c) for c in row), default=0)
            lines += [f"  {c:<{width}}  {v:.6g}" for c, v in row.items()]
        return "\n".join(lines)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None

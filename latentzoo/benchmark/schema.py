"""The pieces of a benchmark suite (:class:`Suite`, :class:`Cell`, :class:`Metrics`) and the
checks of its parts, each failing with one :class:`SuiteError` line that names the key and what it
allows. :mod:`latentzoo.benchmark.suite` reads a whole suite with them.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

SamplerKind = str
from latentzoo.datamodules import InMemoryDataModule
from latentzoo.metrics.extractors import ExtractorName
from latentzoo.zoo import AutoencoderModule, get_model_class

__all__ = [
    "Cell",
    "Metrics",
    "Suite",
    "SuiteError",
    "check_keys",
    "class_spec",
    "parse_metrics",
    "resolve_data_class",
    "resolve_model_class",
]

SUITE_KEYS = {
    "name",
    "description",
    "expected_time",
    "data",
    "trainer",
    "common",
    "seeds",
    "models",
    "grid",
    "samplers",
    "metrics",
    "evaluator",
    "wandb",
}
REQUIRED_KEYS = ("name", "data", "trainer", "seeds", "models", "samplers", "metrics")
MODEL_KEYS = {"name", "class_path", "init_args", "recipe"}
METRIC_KEYS = {
    "extractors",
    "num_samples",
    "num_real",
    "holes",
    "active_dims",
    "diversity",
    "class_radius",
}
GRID_ROOTS = ("model", "data", "trainer", "metrics")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*(_[A-Za-z0-9.+-]+)*$")  # no "__"


class SuiteError(ValueError):
    """A suite that cannot run; the message names the key and what it allows."""


@dataclass(frozen=True)
class Metrics:
    """What is measured on every (cell, sampler): FID/KID/precision/recall with each extractor,
    and once per cell the holes and active dimensions; ``diversity`` (H2) per sampler."""

    extractors: tuple[ExtractorName, ...]
    num_samples: int = 2000
    num_real: int = 2000
    holes: bool = True
    active_dims: bool = True
    diversity: bool = False
    class_radius: int = 0  # prior points of the class-radius estimate (with diversity); 0: off


@dataclass
class Cell:
    """One model at one grid point with one seed; ``name`` is its folder under ``OUT/cells``."""

    name: str
    model: str  # the suite's row label
    point: str  # the grid point's label ("" without a grid)
    grid: dict[str, Any]  # the grid point's overrides, dotted key -> value
    seed: int
    fit: dict[str, Any]  # model, data and trainer of the fit config, without the logger
    metrics: Metrics

    @property
    def row(self) -> tuple[str, str]:
        """The cells of one row differ only by seed."""
        return self.model, self.point

    def config(self, out: Path, progress_bar: bool = False) -> dict[str, Any]:
        """The complete ``latentzoo fit`` config: logs and checkpoints under
        ``out/cells/<name>/version_0``, so ``--ckpt_path last`` resumes it."""
        config = copy.deepcopy(self.fit)
        config["seed_everything"] = self.seed
        config["trainer"]["enable_progress_bar"] = progress_bar
        config["trainer"]["logger"] = {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": str(out / "cells"), "name": self.name, "version": 0},
        }
        return config


@dataclass
class Suite:
    """A checked suite; :attr:`cells` is its expansion (models x grid points x seeds)."""

    name: str
    description: str
    expected_time: str
    data: dict[str, Any]
    trainer: dict[str, Any]
    seeds: list[int]
    samplers: list[SamplerKind]
    metrics: Metrics
    evaluator: dict[str, Any] | None
    wandb: dict[str, Any] | None
    recipes: dict[str, str] = field(default_factory=dict)
    grid_keys: list[str] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)


def check_keys(mapping: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """``mapping``, after checking it is a mapping with no key outside ``allowed``."""
    if not isinstance(mapping, dict):
        raise SuiteError(f"{where} must be a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise SuiteError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )
    return mapping


def parse_metrics(raw: Any, where: str) -> Metrics:
    """The ``metrics`` mapping as :class:`Metrics`."""
    check_keys(raw, METRIC_KEYS, where)
    allowed = get_args(ExtractorName)
    extractors = raw.get("extractors")
    if not isinstance(extractors, list) or not extractors:
        raise SuiteError(f"{where}.extractors: a non-empty list of {', '.join(allowed)}")
    for e in extractors:
        if e not in allowed:
            raise SuiteError(
                f"{where}.extractors: unknown extractor {e!r}; allowed: {', '.join(allowed)}"
            )
    counts = {k: raw.get(k, getattr(Metrics, k)) for k in ("num_samples", "num_real")}
    for key, n in counts.items():
        if not isinstance(n, int) or n < 10:
            raise SuiteError(f"{where}.{key}: an integer >= 10, got {n!r}")
    flags = {k: raw.get(k, getattr(Metrics, k)) for k in ("holes", "active_dims", "diversity")}
    for key, v in flags.items():
        if not isinstance(v, bool):
            raise SuiteError(f"{where}.{key}: true or false, got {v!r}")
    radius = raw.get("class_radius", 0)
    if not isinstance(radius, int) or isinstance(radius, bool) or radius < 0:
        raise SuiteError(f"{where}.class_radius: an integer >= 0, got {radius!r}")
    if radius and not flags["diversity"]:
        raise SuiteError(f"{where}.class_radius: measured with diversity; add diversity: true")
    return Metrics(extractors=tuple(extractors), **counts, **flags, class_radius=radius)


def class_spec(raw: Any, where: str, resolve: Any) -> dict[str, Any]:
    """``{class_path, init_args}`` with the class resolved and its path made explicit."""
    if isinstance(raw, str):
        raw = {"class_path": raw}
    check_keys(raw, {"class_path", "init_args"}, where)
    if "class_path" not in raw:
        raise SuiteError(f"{where}: missing key 'class_path'")
    cls = resolve(str(raw["class_path"]), where)
    init_args = raw.get("init_args") or {}
    if not isinstance(init_args, dict):
        raise SuiteError(f"{where}.init_args must be a mapping")
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(init_args)}


def _import_class(class_path: str, where: str) -> type:
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise SuiteError(
            f"{where}: class_path {class_path!r} does not resolve to a class"
        ) from None


def resolve_model_class(class_path: str, where: str) -> type[AutoencoderModule]:
    """A zoo model by registered name (``VAE``) or by class path (``latentzoo.zoo.VAE``)."""
    if "." not in class_path:
        try:
            return get_model_class(class_path)
        except KeyError as err:
            raise SuiteError(f"{where}: {err.args[0]}") from None
    cls = _import_class(class_path, where)
    if not (inspect.isclass(cls) and issubclass(cls, AutoencoderModule)):
        raise SuiteError(f"{where}: {class_path} is not a latentzoo model (AutoencoderModule)")
    return cls


def resolve_data_class(class_path: str, where: str) -> type[InMemoryDataModule]:
    if "." not in class_path:
        class_path = f"latentzoo.datamodules.{class_path}"
    cls = _import_class(class_path, where)
    if not (inspect.isclass(cls) and issubclass(cls, InMemoryDataModule)):
        raise SuiteError(
            f"{where}: {class_path} is not a latentzoo datamodule (InMemoryDataModule)"
        )
    return cls

"""The pieces of a benchmark suite (:class:`Suite`, :class:`Cell`) and the checks of its parts,
each failing with one :class:`SuiteError` line that names the key and what it allows.
:mod:`latentzoo.benchmark.suite` reads a whole suite with them.

A suite's ``metrics:`` section is an :class:`~latentzoo.evaluation.EvaluationSpec`, parsed by
jsonargparse exactly as ``latentzoo evaluate``'s options are (:func:`parse_spec`).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser

from latentzoo.datamodules import DATAMODULES, InMemoryDataModule
from latentzoo.evaluation import EvaluationSpec
from latentzoo.metrics.extractors import EXTRACTORS
from latentzoo.metrics.registry import METRICS
from latentzoo.registry import RegistryError
from latentzoo.zoo import MODELS, AutoencoderModule

__all__ = [
    "EVALUATOR_PENDING",
    "Cell",
    "Suite",
    "SuiteError",
    "check_keys",
    "class_spec",
    "parse_spec",
    "resolve_data_class",
    "resolve_model_class",
    "spec_record",
    "translate_legacy",
]

SUITE_KEYS = {
    "name",
    "description",
    "expected_time",
    "measured",
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
GRID_ROOTS = ("model", "data", "trainer", "metrics")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*(_[A-Za-z0-9.+-]+)*$")  # no "__"
# The spec's evaluator until the suite has trained it (OUT/evaluators/<DataModule>.ckpt).
EVALUATOR_PENDING = "<the suite's domain evaluator>"
# Spec fields that say where things are, not what is measured: scores stay valid across them.
LOCATION_FIELDS = ("evaluator", "inception_weights", "cache_dir")
# The metrics section before it was an EvaluationSpec; still read (see _translate_legacy).
LEGACY_KEYS = {"extractors", "holes", "active_dims", "diversity", "class_radius"}


class SuiteError(ValueError):
    """A suite that cannot run; the message names the key and what it allows."""


@dataclass
class Cell:
    """One model at one grid point with one seed; ``name`` is its folder under ``OUT/cells``."""

    name: str
    model: str  # the suite's row label
    point: str  # the grid point's label ("" without a grid)
    grid: dict[str, Any]  # the grid point's overrides, dotted key -> value
    seed: int
    fit: dict[str, Any]  # model, data and trainer of the fit config, without the logger
    metrics: EvaluationSpec  # what is measured (sampler: the suite's samplers; seed: the cell's)

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
    measured: dict[str, Any] | None  # {wall_time, on, date, command}: a run of the whole suite
    data: dict[str, Any]
    trainer: dict[str, Any]
    seeds: list[int]
    samplers: list[str]
    metrics: EvaluationSpec
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


def parse_spec(
    raw: Any, samplers: list[str], seed: int, evaluator: bool, where: str
) -> EvaluationSpec:
    """A suite's ``metrics`` mapping as the :class:`EvaluationSpec` of a cell.

    Args:
        raw: The mapping (the spec's fields; ``sampler`` comes from the suite's ``samplers``).
        samplers: The suite's samplers.
        seed: The cell's seed (its samples and metrics are seeded like its training).
        evaluator: Whether the suite trains a domain evaluator for this data set (it has one and
            the data have class labels): a spec that uses one (the ``domain`` extractor, a
            metric that needs it, or the default metrics, diversity among them) then names it
            :data:`EVALUATOR_PENDING` until it is trained.
    """
    raw = translate_legacy(raw, where)
    if "sampler" in raw or "seed" in raw:
        raise SuiteError(f"{where}: the samplers are the suite's 'samplers', the seeds its 'seeds'")
    given = {**raw, "sampler": list(samplers), "seed": seed}
    if evaluator and given.get("evaluator") is None and _uses_evaluator(given):
        given["evaluator"] = EVALUATOR_PENDING
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(EvaluationSpec, nested_key="metrics")
    try:
        parsed = parser.parse_object({"metrics": given})
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
        spec = instantiate(parsed).metrics
    except ValueError as err:  # the spec's own checks
        raise SuiteError(f"{where}: {_first_line(err)}{_evaluator_hint(err)}") from None
    except Exception as err:  # jsonargparse's ArgumentError: an unknown key, a wrong type
        raise SuiteError(f"{where}: {_first_line(err)}") from None
    assert isinstance(spec, EvaluationSpec)
    return spec


def _uses_evaluator(given: dict[str, Any]) -> bool:
    """Whether a spec's fields ask for the domain evaluator (before it is parsed)."""
    extractors = given.get("extractor", "inception")
    extractors = [extractors] if isinstance(extractors, str) else list(extractors)
    named = given.get("metrics")
    if named is None:
        return True  # the default metrics take the diversity metric where there is an evaluator
    return "domain" in extractors or any(
        n in METRICS and "evaluator" in METRICS.get(n).needs for n in named
    )


def translate_legacy(raw: Any, where: str) -> dict[str, Any]:
    """A ``metrics`` section as the spec's fields; the format before the spec (``extractors``,
    ``holes``/``active_dims``/``diversity`` flags, ``class_radius`` points, 2,000 samples, the
    test split) is read as it always was, so old suite files run unchanged."""
    if not isinstance(raw, dict):
        raise SuiteError(f"{where} must be a mapping of the evaluation's settings")
    if not LEGACY_KEYS & set(raw):
        return raw
    mixed = sorted({"extractor", "metrics", "metric_options"} & set(raw))
    if mixed:
        raise SuiteError(f"{where}: {mixed[0]!r} with the old keys; write one format or the other")
    extractors = raw.get("extractors")
    names = EXTRACTORS.list()
    if not isinstance(extractors, list) or not extractors:
        raise SuiteError(f"{where}.extractors: a non-empty list of {', '.join(names)}")
    for e in extractors:
        if e not in EXTRACTORS:
            raise SuiteError(
                f"{where}.extractors: unknown extractor {e!r}; allowed: {', '.join(names)}"
            )
    flags = {"holes": True, "active_dims": True, "diversity": False}
    for key, default in flags.items():
        flags[key] = raw.get(key, default)
        if not isinstance(flags[key], bool):
            raise SuiteError(f"{where}.{key}: true or false, got {flags[key]!r}")
    radius = raw.get("class_radius", 0)
    if not isinstance(radius, int) or isinstance(radius, bool) or radius < 0:
        raise SuiteError(f"{where}.class_radius: an integer >= 0, got {radius!r}")
    if radius and not flags["diversity"]:
        raise SuiteError(f"{where}.class_radius: measured with diversity; add diversity: true")
    metrics = [
        "fid",
        "kid",
        "precision_recall",
        "density_coverage",
        *(k for k, on in flags.items() if on),
    ]
    rest = {k: v for k, v in raw.items() if k not in LEGACY_KEYS}
    new = {"extractor": list(extractors), "num_samples": 2000, "num_real": 2000, "split": "test"}
    new |= rest | {"metrics": metrics + (["class_radius"] if radius else [])}
    if radius:
        new["metric_options"] = {"class_radius": {"points": radius}}
    return new


def _first_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    text = text.replace("Group 'metrics' does not accept option", "unknown key")
    return re.sub(r'Parser key "metrics\.([^"]+)":', r"\1:", text)


def _evaluator_hint(err: Exception) -> str:
    if "evaluator" in str(err):
        return "; add 'evaluator: {max_epochs: 3}' to the suite to train one"
    return ""


def spec_record(spec: EvaluationSpec) -> dict[str, Any]:
    """What a cell's scores were measured under: the spec without where things are."""
    record = dataclasses.asdict(spec)
    for name in LOCATION_FIELDS:
        record.pop(name, None)
    return record


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


def resolve_model_class(class_path: str, where: str) -> type[AutoencoderModule]:
    """A zoo model by registered name (``VAE``) or by class path (``latentzoo.zoo.VAE``)."""
    try:
        return MODELS.resolve(class_path, allow_import=True)
    except RegistryError as err:
        raise SuiteError(f"{where}: {err}") from None


def resolve_data_class(class_path: str, where: str) -> type[InMemoryDataModule]:
    """A datamodule by name (``FashionMNIST``) or by class path."""
    try:
        return DATAMODULES.resolve(class_path, allow_import=True)
    except RegistryError as err:
        raise SuiteError(f"{where}: {err}") from None

"""Benchmark suites: a YAML file (or a built-in name) read, checked and expanded into cells.

A suite names one data set, one training budget, the models (each a latentzoo config fragment,
merged over ``common``), the seeds, an optional grid of overrides, the latent samplers and the
metrics; ``docs/benchmarks.md`` has the schema. A *cell* is one model at one grid point with one
seed, named ``<model>__<grid point>__seed<k>``: an ordinary ``latentzoo fit`` run.

A grid point is a mapping of dotted keys into the cell's config (``model.init_args.latent_dim``,
``data.init_args.latent_dim``, ``trainer.max_epochs``) or into the suite's evaluation spec
(``metrics.extractor``); ``data`` may also be a whole ``{class_path, init_args}``, which keeps the
suite's data arguments its class accepts (the batch size). ``name`` labels the point; without it
the label is made from the values. Everything is checked here, before anything trains.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import inspect
from pathlib import Path
from typing import Any

import yaml

from latentzoo.benchmark.schema import (
    GRID_ROOTS,
    MODEL_KEYS,
    REQUIRED_KEYS,
    SAFE_NAME,
    SUITE_KEYS,
    Cell,
    Suite,
    SuiteError,
    check_keys,
    class_spec,
    parse_spec,
    resolve_data_class,
    resolve_model_class,
    translate_legacy,
)
from latentzoo.callbacks.latent_sampler import check_sampler_name, sampler_names
from latentzoo.evaluation import EvaluationSpec
from latentzoo.metrics.registry import METRICS
from latentzoo.zoo import AutoencoderModule

__all__ = ["builtin_suites", "load_suite", "parse_suite"]


def builtin_suites() -> dict[str, Path]:
    """Built-in suite name -> its YAML file, shipped in ``latentzoo/benchmark/suites/``."""
    folder = importlib.resources.files("latentzoo.benchmark") / "suites"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def load_suite(spec: str) -> Suite:
    """The suite in the file ``spec``, or the built-in suite of that name, checked and expanded."""
    path = Path(spec)
    if not path.is_file():
        builtins = builtin_suites()
        if spec not in builtins:
            raise SuiteError(
                f"no suite file {spec!r} and no built-in suite of that name; built-in suites: "
                f"{', '.join(sorted(builtins))}"
            )
        path = builtins[spec]
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SuiteError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{path} must hold a mapping with the keys {', '.join(REQUIRED_KEYS)}")
    return parse_suite(raw)


def parse_suite(raw: dict[str, Any]) -> Suite:
    """Check every key of a suite mapping and expand its cells."""
    check_keys(raw, SUITE_KEYS, "suite")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise SuiteError(f"suite: missing key {missing[0]!r}; required: {', '.join(REQUIRED_KEYS)}")
    name = str(raw["name"])
    if not SAFE_NAME.match(name):
        raise SuiteError(f"name: {name!r} may hold letters, digits, '.', '+', '-' and single '_'")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise SuiteError(f"seeds: a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SuiteError(f"seeds: {seeds} repeats a seed")
    trainer = check_keys(raw["trainer"], set(raw["trainer"] or {}) - {"logger"}, "trainer")
    if trainer.get("max_epochs") is None and trainer.get("max_steps") in (None, -1):
        raise SuiteError("trainer: give the budget as max_epochs or max_steps (the same for all)")
    evaluator = raw.get("evaluator")
    if evaluator is not None:
        check_keys(evaluator, set(evaluator) - {"save_path", "logger"}, "evaluator")
    wandb = raw.get("wandb")
    if wandb is not None:
        check_keys(wandb, {"project", "entity"}, "wandb")
    samplers = _samplers(raw["samplers"])
    data = class_spec(raw["data"], "data", resolve_data_class)
    _check_fits_data(data, translate_legacy(raw["metrics"], "metrics"), "suite")
    suite = Suite(
        name=name,
        description=" ".join(str(raw.get("description", "")).split()),
        expected_time=str(raw.get("expected_time", "not stated")),
        measured=_measured(raw.get("measured")),
        data=data,
        trainer=dict(trainer),
        seeds=list(seeds),
        samplers=samplers,
        metrics=parse_spec(
            raw["metrics"],
            samplers,
            seeds[0],
            evaluator is not None and _has_classes(data),
            "metrics",
        ),
        evaluator=None if evaluator is None else dict(evaluator),
        wandb=wandb,
    )
    models = _models(raw["models"], raw.get("common") or {})
    suite.recipes = {m["name"]: m["recipe"] for m in models if m.get("recipe")}
    points = _grid(raw.get("grid"))
    suite.grid_keys = list(dict.fromkeys(k for _, p in points for k in p))
    for label, point in points:
        data, spec = _point(suite, raw["metrics"], point, f"grid point {label or 0}")
        for model in models:
            for seed in suite.seeds:
                trainer = _set_all(copy.deepcopy(suite.trainer), point, "trainer")
                fit = {"model": _model_spec(model, point), "data": data, "trainer": trainer}
                name = "__".join(p for p in (model["name"], label, f"seed{seed}") if p)
                cell_spec = dataclasses.replace(spec, seed=seed)
                suite.cells.append(Cell(name, model["name"], label, point, seed, fit, cell_spec))
    return suite


def _measured(raw: Any) -> dict[str, Any] | None:
    """A suite's record of a measured run: its wall time and what it ran on."""
    if raw is None:
        return None
    check_keys(raw, {"wall_time", "on", "date", "command"}, "measured")
    missing = [k for k in ("wall_time", "on") if k not in raw]
    if missing:
        raise SuiteError(f"measured: missing key {missing[0]!r} (a time says what it ran on)")
    return dict(raw)


def _samplers(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise SuiteError("samplers: a non-empty list of samplers (prior, gmm, two_stage, ...)")
    for s in raw:
        try:
            check_sampler_name(str(s))
        except ValueError:
            allowed = ", ".join(sampler_names())
            raise SuiteError(f"samplers: unknown sampler {s!r}; allowed: {allowed}") from None
    if len(set(raw)) != len(raw):
        raise SuiteError(f"samplers: {raw} repeats a sampler")
    return list(raw)


def _models(raw: Any, common: Any) -> list[dict[str, Any]]:
    """The models with their classes resolved and ``common`` merged under their init_args."""
    if not isinstance(raw, list) or not raw:
        raise SuiteError("models: a non-empty list of {name, class_path, init_args, recipe}")
    check_keys(common, set(common) if isinstance(common, dict) else set(), "common")
    models, seen = [], set()
    for i, m in enumerate(raw):
        check_keys(m, MODEL_KEYS, f"models[{i}]")
        name = str(m.get("name", ""))
        if not SAFE_NAME.match(name):
            raise SuiteError(
                f"models[{i}].name: {name!r} must be given and hold only letters, digits, '.', "
                "'+', '-' and single '_' (it names the cell's folder)"
            )
        if name in seen:
            raise SuiteError(f"models[{i}].name: {name!r} is used twice; model names label rows")
        seen.add(name)
        fragment = {k: v for k, v in m.items() if k in ("class_path", "init_args")}
        spec = class_spec(fragment, f"models[{i}] ({name})", resolve_model_class)
        spec["init_args"] = {**common, **spec["init_args"]}
        _check_init_args(spec, f"models[{i}] ({name})")
        models.append({"name": name, "recipe": m.get("recipe"), **spec})
    return models


def _check_init_args(spec: dict[str, Any], where: str) -> None:
    cls = resolve_model_class(spec["class_path"], where)
    accepted: set[str] = set()
    for klass in cls.__mro__:  # the zoo's classes, down to AutoencoderModule (not Lightning's)
        if not issubclass(klass, AutoencoderModule):
            break
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return  # passes anything on
        accepted |= {p.name for p in params}
    unknown = sorted(set(spec["init_args"]) - accepted)
    if unknown:
        raise SuiteError(f"{where}: {cls.__name__} takes no argument {unknown[0]!r}")


def _grid(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    """(label, overrides) of each grid point; one empty point without a grid."""
    if raw is None:
        return [("", {})]
    if not isinstance(raw, list) or not raw:
        raise SuiteError("grid: a non-empty list of mappings of dotted keys to values")
    points, labels = [], set()
    for i, p in enumerate(raw):
        if not isinstance(p, dict) or not p:
            raise SuiteError(f"grid[{i}]: a non-empty mapping of dotted keys to values")
        point = {k: v for k, v in p.items() if k != "name"}
        for key in point:
            if key.split(".")[0] not in GRID_ROOTS or key.startswith("trainer.logger"):
                raise SuiteError(
                    f"grid[{i}]: key {key!r} must start with one of {', '.join(GRID_ROOTS)} "
                    "(and not set trainer.logger)"
                )
        label = str(p["name"]) if "name" in p else "-".join(map(_part, point.items()))
        if not SAFE_NAME.match(label):
            raise SuiteError(f"grid[{i}]: label {label!r} is not a safe folder name; give a 'name'")
        if label in labels:
            raise SuiteError(f"grid[{i}]: label {label!r} is used twice; give each point a 'name'")
        labels.add(label)
        points.append((label, point))
    return points


def _part(item: tuple[str, Any]) -> str:
    key, value = item
    if isinstance(value, dict):
        return str(value.get("class_path", key)).rsplit(".", 1)[-1]
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return key.rsplit(".", 1)[-1] + "".join(c if c.isalnum() or c in ".+-," else "-" for c in text)


def _set_all(config: dict[str, Any], point: dict[str, Any], root: str) -> dict[str, Any]:
    """``config`` (the part under ``root``) with the point's dotted ``root.*`` keys set."""
    for key, value in point.items():
        parts = key.split(".")
        if parts[0] != root or len(parts) == 1:
            continue
        node = config
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)
    return config


def _model_spec(model: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    spec = {"class_path": model["class_path"], "init_args": copy.deepcopy(model["init_args"])}
    spec = _set_all(spec, point, "model")
    _check_init_args(spec, f"model {model['name']} at grid point {point}")
    return spec


def _point(
    suite: Suite, raw_metrics: dict[str, Any], point: dict[str, Any], where: str
) -> tuple[dict[str, Any], EvaluationSpec]:
    """The data spec and the evaluation spec at one grid point, checked against each other."""
    data = copy.deepcopy(suite.data)
    if "data" in point:
        new = class_spec(point["data"], f"{where}: data", resolve_data_class)
        if new["class_path"] != data["class_path"]:  # keep what the new class accepts
            params = inspect.signature(resolve_data_class(new["class_path"], where)).parameters
            data["init_args"] = {k: v for k, v in data["init_args"].items() if k in params}
        data = {
            "class_path": new["class_path"],
            "init_args": {**data["init_args"], **new["init_args"]},
        }
    data = _set_all(data, point, "data")
    metrics_raw = _set_all({**raw_metrics, **point.get("metrics", {})}, point, "metrics")
    _check_fits_data(data, translate_legacy(metrics_raw, f"{where}: metrics"), where)
    evaluator = suite.evaluator is not None and _has_classes(data)
    spec = parse_spec(metrics_raw, suite.samplers, suite.seeds[0], evaluator,
                      f"{where}: metrics")  # fmt: skip
    return data, spec


def _has_classes(data: dict[str, Any]) -> bool:
    """Whether a data spec's class has class labels (a domain evaluator can be trained on it)."""
    cls = resolve_data_class(data["class_path"], "data")
    return getattr(cls, "num_classes", None) is not None


def _check_fits_data(data: dict[str, Any], metrics: dict[str, Any], where: str) -> None:
    """The extractors and metrics a point asks for against its data set's shape and labels."""
    cls = resolve_data_class(data["class_path"], where)
    try:
        shape = tuple(cls(**data["init_args"]).data_shape)
    except (TypeError, ValueError) as err:
        raise SuiteError(f"{where}: data {cls.__name__}: {err}") from None
    extractors = metrics.get("extractor", "inception")
    extractors = [extractors] if isinstance(extractors, str) else list(extractors)
    if "inception" in extractors and len(shape) != 3:
        raise SuiteError(
            f"{where}: metrics.extractor: 'inception' needs images, {cls.__name__} gives vectors "
            f"of shape {shape}; use 'pixels'"
        )
    named = [n for n in metrics.get("metrics") or [] if n in METRICS]
    needs_classes = "domain" in extractors or any(
        "evaluator" in METRICS.get(n).needs for n in named
    )
    if needs_classes and getattr(cls, "num_classes", None) is None:
        raise SuiteError(
            f"{where}: the 'domain' extractor and the diversity metrics need a classifier of the "
            f"data's classes, and {cls.__name__} has no class labels; use 'pixels' or "
            "'inception' and leave out diversity"
        )

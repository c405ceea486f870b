"""The metric registry: every number latentzoo reports, by name, with the keys it produces.

Two kinds of metric register here (entry-point group ``latentzoo.metrics`` for plugins):

- **feature metrics** compare real and generated features of one extractor: a pure function
  ``fn(real, fake, *, seed, **options) -> {key: value}`` on (N, F) and (M, F) tensors, registered
  with :func:`register_feature_metric`. FID, KID, precision/recall, density/coverage (and any
  plug-in, e.g. the 1-NN two-sample test of ``docs/examples/one_nn.py``) are computed from the
  same features, extracted once per evaluation by :class:`latentzoo.callbacks.FIDCallback`.
- **model metrics** measure the model itself (holes, active dimensions, class diversity): an
  evaluation callback, registered with :func:`register_model_metric` with a factory that builds
  it from an :class:`EvaluationContext` and the metric's options.

Each declares its keys as :class:`MetricKey`: what the value varies with (the sampler the samples
come from, the feature extractor, or neither: a number of the model alone), whether lower or
higher is better, and a label in words. The results table of ``latentzoo evaluate`` and
``latentzoo benchmark``, its report and its W&B table derive their columns from these
declarations, so a new metric needs no edit anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor

from latentzoo.registry import Registry

__all__ = [
    "METRICS",
    "EvaluationContext",
    "MetricInfo",
    "MetricKey",
    "feature_metric_names",
    "key_info",
    "register_feature_metric",
    "register_model_metric",
]

Varies = Literal["sampler", "extractor"]
Better = Literal["lower", "higher"] | None


@dataclass(frozen=True)
class MetricKey:
    """One number a metric reports.

    Attributes:
        name: The key (``fid``); logged as ``<stage>/<name>``, a column ``<name>_<extractor>``
            when it varies with the extractor.
        varies: What else it depends on besides the model: the ``sampler`` (a row per sampler)
            and/or the ``extractor`` (a column per extractor); () for a number of the model.
        better: ``lower`` or ``higher`` is better; None where neither (a count, a diagnostic).
        label: The column's name in words, with its unit where it has one.
        plotted: Drawn against a suite's grid (the headline numbers).
        not_applicable: What a NaN of this key means, where NaN means the number does not apply
            to the row (not a failure): a results table writes ``n/a`` where every seed's is NaN.
            Empty: a NaN is a failed number, left out.
    """

    name: str
    varies: tuple[Varies, ...] = ("sampler",)
    better: Better = None
    label: str = ""
    plotted: bool = False
    not_applicable: str = ""


@dataclass(frozen=True)
class EvaluationContext:
    """What a model metric's callback is built from: the evaluation's shared settings."""

    num_samples: int
    num_real: int
    split: Literal["train", "val", "test"]
    seed: int
    batch_size: int
    evaluator: str | None = None
    picture_dir: str | None = None  # where pictures go as PNG files (None: to the loggers)


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric.

    Attributes:
        name: Its registered name.
        kind: ``features`` (``compute`` is the pure function) or ``model`` (``compute`` is the
            callback factory ``(context, **options) -> Callback``).
        keys: The keys it reports.
        compute: See ``kind``.
        reconstructions: For a feature metric: also computed on reconstructions of the held-out
            split, its keys suffixed ``_recon`` (FID's ``fid_recon``).
        needs: What it cannot run without: ``evaluator`` (a domain classifier), ``model`` (not
            on saved samples).
        default: Computed when an evaluation names no metrics (off for the costly ones).
        description: One line for listings.
    """

    name: str
    kind: Literal["features", "model"]
    keys: tuple[MetricKey, ...]
    compute: Callable[..., Any]
    reconstructions: bool = False
    needs: frozenset[str] = field(default_factory=frozenset)
    default: bool = True
    description: str = ""

    def all_keys(self) -> tuple[MetricKey, ...]:
        """Its keys, with the ``_recon`` copies that vary with the extractor only."""
        if not self.reconstructions:
            return self.keys
        recon = tuple(
            MetricKey(
                f"{k.name}_recon",
                ("extractor",),
                k.better,
                f"{k.label} (reconstructions)",
                k.plotted,
                k.not_applicable,
            )
            for k in self.keys
        )
        return self.keys + recon


def _check(entry: Any) -> None:
    if not isinstance(entry, MetricInfo):
        raise TypeError(f"{entry!r} is not a latentzoo MetricInfo")


METRICS: Registry[MetricInfo] = Registry("metric", "latentzoo.metrics", _check)

FeatureFn = Callable[..., Mapping[str, Tensor]]


def register_feature_metric(
    name: str,
    keys: tuple[MetricKey, ...],
    *,
    reconstructions: bool = False,
    default: bool = True,
    description: str = "",
) -> Callable[[FeatureFn], FeatureFn]:
    """Decorator registering ``fn(real, fake, *, seed, **options) -> {key: value}``.

    ``real`` (N, F) and ``fake`` (M, F) are float32 features of the whole sets (every rank sees
    them all); ``seed`` seeds any random choice it makes; ``options`` are its own arguments
    (``metric_options`` of the evaluation spec). It must return every key it declares.
    """

    def decorator(fn: FeatureFn) -> FeatureFn:
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        info = MetricInfo(name, "features", keys, fn, reconstructions, default=default,
                          description=doc)  # fmt: skip
        METRICS.register(info, name=name)
        return fn

    return decorator


def register_model_metric(
    name: str,
    keys: tuple[MetricKey, ...],
    *,
    needs: tuple[str, ...] = (),
    default: bool = True,
    description: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a callback class (or factory) ``(context, **options) -> Callback``
    through its classmethod ``for_evaluation`` when it has one, else itself."""

    def decorator(cls: Callable[..., Any]) -> Callable[..., Any]:
        factory = getattr(cls, "for_evaluation", cls)
        doc = description or (cls.__doc__ or "").strip().split("\n")[0]
        needed = frozenset(needs) | {"model"}
        info = MetricInfo(name, "model", keys, factory, False, needed, default, doc)
        METRICS.register(info, name=name)
        return cls

    return decorator


def feature_metric_names(defaults_only: bool = True) -> list[str]:
    """Registered feature metrics, by name (those on by default, unless told otherwise)."""
    return [
        n
        for n, info in METRICS.items()
        if info.kind == "features" and (info.default or not defaults_only)
    ]


def key_info() -> dict[str, MetricKey]:
    """Every declared key (``_recon`` copies included) -> its declaration, feature metrics'
    first, each kind in name order (the order of a results table's columns)."""
    infos = sorted((i for _, i in METRICS.items()), key=lambda i: i.kind != "features")
    return {k.name: k for info in infos for k in info.all_keys()}

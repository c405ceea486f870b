"""The evaluation spec: what an evaluation measures, and the protocol every number states.

One dataclass, parsed by jsonargparse as it is, serves ``latentzoo evaluate`` (its options) and a
benchmark suite (its ``metrics:`` section), so both are checked by the same code and a suite
file's mistake is reported like a command line's. Samplers, extractors and metrics are names in
their registries (:func:`latentzoo.zoo.list_densities`, ``EXTRACTORS``, ``METRICS``), plug-ins
included, and are checked against them here, before anything is loaded or trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from latentzoo.callbacks.latent_sampler import check_sampler_name
from latentzoo.metrics.extractors import EXTRACTORS
from latentzoo.metrics.fd_infinity import joins_fid
from latentzoo.metrics.registry import METRICS, MetricInfo

__all__ = ["EvaluationSpec", "Split"]

Split = Literal["train", "val", "test"]


def _as_tuple(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass
class EvaluationSpec:
    """What to measure, on which samples, against which data.

    Args:
        sampler: Where the codes of the samples come from, one or a list: ``prior`` (the model's
            own) or a registered fittable density (``normal``, ``gmm``, ``two_stage``, plug-ins),
            fitted to the training codes once per evaluation.
        extractor: The features of the feature metrics, one or a list of registered extractors
            (``inception``, ``domain``, ``pixels``, plug-ins); the features are extracted once
            per extractor and shared by every feature metric.
        metrics: Registered metrics to compute (``latentzoo evaluate --list_metrics``); None:
            every one that applies and is on by default (a domain classifier's metrics need
            ``evaluator``; a model's need a model).
        metric_options: Per metric, its arguments (``{"kid": {"subsets": 50}}``).
        sampler_options: Per sampler, its density's arguments (``{"gmm": {"n_components":
            20}}``).
        num_samples: Generated samples (and prior draws and codes of the holes metric).
        num_real: Real samples of ``split`` the samples are compared with (all if fewer).
        split: The reference split: ``test`` (held out from training), for every evaluation
            and suite; the training-time callbacks name theirs in the run's hyper-parameters.
        seed: Seeds the samples, the fitted samplers and every random choice of the metrics.
        batch_size: Samples per generation and feature-extraction batch.
        evaluator: The domain classifier's checkpoint (``latentzoo evaluator fit``), for the
            ``domain`` extractor and the diversity metrics.
        inception_weights: A local Inception weights file (None: found offline, see
            :func:`latentzoo.metrics.extractors.find_inception`).
        cache_dir: Folder of the cached real features.
    """

    sampler: str | list[str] = "prior"
    extractor: str | list[str] = "inception"
    metrics: list[str] | None = None
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    sampler_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    num_samples: int = 10_000
    num_real: int = 10_000
    split: Split = "test"
    seed: int = 0
    batch_size: int = 250
    evaluator: str | None = None
    inception_weights: str | None = None
    cache_dir: str = ".latentzoo_cache/fid"

    def __post_init__(self) -> None:
        samplers, extractors = self.samplers, self.extractors
        if not samplers or len(set(samplers)) != len(samplers):
            raise ValueError(f"sampler: one or more different samplers, got {samplers}")
        for name in samplers:
            check_sampler_name(name)
        if not extractors or len(set(extractors)) != len(extractors):
            raise ValueError(f"extractor: one or more different extractors, got {extractors}")
        for name in extractors:
            if name not in EXTRACTORS:
                raise ValueError(f"extractor: {EXTRACTORS.unknown(name)}")
        for name in [*(self.metrics or []), *self.metric_options]:
            if name not in METRICS:
                raise ValueError(f"metrics: {METRICS.unknown(name)}")
        for name in self.sampler_options:
            if name not in samplers:
                raise ValueError(f"sampler_options: {name!r} is not among the samplers {samplers}")
        if min(self.num_samples, self.num_real) < 2 or self.batch_size < 1:
            raise ValueError(
                f"num_samples and num_real must be >= 2 and batch_size >= 1, got "
                f"{self.num_samples}, {self.num_real}, {self.batch_size}"
            )
        if self.metrics is not None and joins_fid(self.num_samples, self.num_real, self.metrics):
            # named, so that a results file's spec says what was computed
            self.metrics = list(dict.fromkeys([*self.metrics, "fd_infinity"]))
        if "domain" in extractors and self.evaluator is None:
            raise ValueError(
                "extractor 'domain' needs evaluator=<checkpoint of latentzoo evaluator fit>"
            )

    @property
    def samplers(self) -> tuple[str, ...]:
        return _as_tuple(self.sampler)

    @property
    def extractors(self) -> tuple[str, ...]:
        return _as_tuple(self.extractor)

    def chosen_metrics(self, has_model: bool = True) -> list[MetricInfo]:
        """The metrics to compute, registered order: those named, or every default one that
        can run here; ``fd_infinity`` joins ``fid`` wherever fewer than 10,000 samples or real
        images are compared (FID at N < 10,000 does not compare across N or with the
        literature; FD-infinity does). A named metric that cannot run is an error that says
        why."""
        infos = self._chosen(has_model)
        names = [i.name for i in infos]
        if joins_fid(self.num_samples, self.num_real, names) and "fd_infinity" not in names:
            infos.append(METRICS.get("fd_infinity"))
        return infos

    def _chosen(self, has_model: bool) -> list[MetricInfo]:
        have = {"evaluator"} if self.evaluator is not None else set()
        have |= {"model"} if has_model else set()
        if self.metrics is not None:
            infos = [METRICS.get(n) for n in dict.fromkeys(self.metrics)]
            for info in infos:
                missing = sorted(info.needs - have)
                if missing:
                    what = {"evaluator": "evaluator=<domain evaluator checkpoint>",
                            "model": "a model (a checkpoint, not saved samples)"}  # fmt: skip
                    raise ValueError(
                        f"metric {info.name!r} needs {' and '.join(what[m] for m in missing)}"
                    )
            return infos
        return [i for _, i in METRICS.items() if i.default and i.needs <= have]

    def as_dict(self) -> dict[str, Any]:
        """The spec as plain data (for results files)."""
        return asdict(self)

"""Class diversity of samples, judged by the domain evaluator, and the latent-distance bound.

See :mod:`latentzoo.metrics.diversity` for the quantities. Logged (``stage`` is ``val``/``test``):
``stage/h2`` (collision entropy of the predicted-class histogram; its maximum log K is in the
docs), ``stage/classes_covered``, ``stage/distance_bound`` (log(4 pi H2) / sqrt(2 H2); NaN, "n/a"
in reports, unless the samples decode draws of N(0, I), which its derivation assumes) and:

- with ``class_radius_samples > 0``, ``stage/class_radius``: the mean over draws z of the model's
  prior of the distance to the nearest latent point decoded into another class
  (:func:`~latentzoo.metrics.diversity.class_radius`: DeepFool through decoder and evaluator,
  then random directions, each refined by bisection), to compare with the bound; over the points
  where another class was found, whose share missing is ``stage/class_radius_unresolved``. It
  costs up to about 110 + 28 x (1 + directions) decoder-and-evaluator passes per point
  (DeepFool's 10 iterations of a forward and a backward per class, then 16 scan and 12
  bisection steps per direction), so it is off by default;
- with ``latent_distance_samples > 0``, ``stage/latent_distance``: the distance to the nearest
  *prior draw* decoded into another class, O(n^2) and far above the class radius beyond a few
  latent dimensions (the draws are too sparse); kept for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor
from typing_extensions import override

from latentzoo.callbacks.base import PeriodicEvaluation, Stage
from latentzoo.metrics.diversity import ClassDiversity, class_radius, nearest_other_class_distance
from latentzoo.metrics.extractors import DomainFeatures
from latentzoo.metrics.registry import EvaluationContext, MetricKey, register_model_metric
from latentzoo.zoo import AutoencoderModule, StandardNormal

__all__ = ["DiversityCallback", "class_radius_metric", "samples_from_standard_normal"]


def samples_from_standard_normal(model: AutoencoderModule) -> bool:
    """Whether ``model.sample`` decodes draws of N(0, I): the attached sampler, else the model's
    generative prior, is a :class:`~latentzoo.zoo.StandardNormal`."""
    density = model.latent_sampler or model.generative_prior()
    return isinstance(density, StandardNormal)


@register_model_metric(
    "diversity",
    (
        MetricKey("h2", ("sampler",), "higher", "H2, class diversity [nats]"),
        MetricKey("classes_covered", ("sampler",), "higher", "classes covered"),
        MetricKey(
            "distance_bound",
            ("sampler",),
            None,
            "class-distance bound",
            plotted=True,
            not_applicable="the sampler is not N(0, I), which the bound assumes",
        ),
    ),
    needs=("evaluator",),
)
class DiversityCallback(PeriodicEvaluation):
    """Histogram of the evaluator's predictions on ``model.sample(n)``; H2, coverage, bound.

    Args:
        evaluator: Checkpoint written by ``latentzoo evaluator fit``.
        num_samples: Samples per evaluation, split over ranks.
        every_n_epochs: Evaluate after every k-th validation epoch and at the end of ``fit``
            (:class:`~latentzoo.callbacks.PeriodicEvaluation`); always at validate and test.
        latent_distance_samples: Prior points for the pool distance (0: off).
        class_radius_samples: Prior points for the class radius (0: off).
        class_radius_directions: Random directions searched per point after DeepFool.
        histogram: Measure the class histogram of the samples (H2, coverage, bound); False
            measures only the distances asked for (the ``class_radius`` metric alone).
        batch_size: Generation batch size.
        seed: Seeds the samples (batch b uses ``seed + b``, on any number of ranks).
    """

    def __init__(
        self,
        evaluator: str,
        num_samples: int = 10_000,
        every_n_epochs: int = 5,
        latent_distance_samples: int = 0,
        class_radius_samples: int = 0,
        class_radius_directions: int = 8,
        histogram: bool = True,
        batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        if (
            num_samples < 1
            or min(latent_distance_samples, class_radius_samples, class_radius_directions) < 0
        ):
            raise ValueError(
                "num_samples must be >= 1, and latent_distance_samples, class_radius_samples "
                "and class_radius_directions >= 0"
            )
        self.class_radius_samples = class_radius_samples
        self.class_radius_directions = class_radius_directions
        self.evaluator_path = evaluator
        self.num_samples = num_samples
        self.latent_distance_samples, self.batch_size, self.seed = (
            latent_distance_samples,
            batch_size,
            seed,
        )
        self.histogram = histogram
        self.classifier: DomainFeatures | None = None
        self.metric: ClassDiversity | None = None

    @classmethod
    def for_evaluation(cls, context: EvaluationContext, **options: Any) -> DiversityCallback:
        """As :func:`latentzoo.evaluate` runs it: the samples' class histogram alone."""
        assert context.evaluator is not None, "the registry says diversity needs an evaluator"
        return cls(context.evaluator, num_samples=context.num_samples,
                   batch_size=context.batch_size, seed=context.seed, **options)  # fmt: skip

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        model = self.check_model(pl_module)
        if self.classifier is None:
            self.classifier = DomainFeatures(self.evaluator_path, model.data_shape)
            self.metric = ClassDiversity(self.classifier.num_classes)
        self.classifier.to(model.device)
        assert self.metric is not None
        self.metric.to(model.device)

    @override
    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> dict[str, Tensor | float]:
        """Classify this rank's samples and compute the histogram over ranks (collective)."""
        assert self.classifier is not None and self.metric is not None
        out: dict[str, Tensor | float] = {}
        if self.histogram:
            for x in self.sample_batches(
                trainer, model, self.num_samples, self.batch_size, self.seed, True
            ):
                self.metric.update(self.classifier.predict(x))
            stats = self.metric.compute()  # collective: sums the counts over ranks
            self.metric.reset()
            out |= {k: v for k, v in stats.items() if k not in ("histogram", "h2_max")}
            if not samples_from_standard_normal(model):
                out["distance_bound"] = float("nan")  # its derivation assumes z ~ N(0, I)
        if self.latent_distance_samples:
            out["latent_distance"] = self._latent_distance(model)
        if self.class_radius_samples:
            radius = self._class_radius(model)
            found = torch.isfinite(radius)
            out["class_radius"] = float(radius[found].mean()) if found.any() else float("inf")
            out["class_radius_unresolved"] = float((~found).double().mean())
        return out

    def _prior_points(self, model: AutoencoderModule, n: int) -> Tensor:
        """n draws of the model's prior, (n, latent_dim), the same on every rank and evaluation;
        training's random state is left alone."""
        devices = [model.device] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            return model.sample_prior(n).detach()

    def _logits(self, model: AutoencoderModule) -> Callable[[Tensor], Tensor]:
        """Latent points -> the evaluator's logits for their decoded images."""
        assert self.classifier is not None
        net = self.classifier.net
        return lambda z: net(model.decode(z).clamp(0, 1))

    def _latent_distance(self, model: AutoencoderModule) -> float:
        z = self._prior_points(model, self.latent_distance_samples)
        logits = self._logits(model)
        labels = torch.cat([logits(b).argmax(1) for b in z.split(self.batch_size)])
        return float(nearest_other_class_distance(z, labels))

    def _class_radius(self, model: AutoencoderModule) -> Tensor:
        z = self._prior_points(model, self.class_radius_samples)
        return class_radius(
            z,
            self._logits(model),
            num_directions=self.class_radius_directions,
            batch_size=self.batch_size,
            generator=torch.Generator().manual_seed(self.seed),
        )


@register_model_metric(
    "class_radius",
    (
        MetricKey("class_radius", (), None, "class radius", plotted=True),
        MetricKey("class_radius_unresolved", (), "lower", "class radius: share unresolved"),
    ),
    needs=("evaluator",),
    default=False,
)
def class_radius_metric(
    context: EvaluationContext, points: int = 200, **options: Any
) -> DiversityCallback:
    """The class radius from ``points`` draws of the model's prior (off unless asked for: it
    costs ~110 + 28 x (1 + directions) decoder-and-evaluator passes per point)."""
    assert context.evaluator is not None, "the registry says class_radius needs an evaluator"
    return DiversityCallback(context.evaluator, class_radius_samples=points, histogram=False,
                             batch_size=context.batch_size, seed=context.seed,
                             **options)  # fmt: skip

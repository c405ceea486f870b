"""Class diversity of samples, judged by the domain evaluator, and the latent-distance bound.

See :mod:`latentzoo.metrics.diversity` for the quantities. Logged (``stage`` is ``val``/``test``):
``stage/h2`` (collision entropy of the predicted-class histogram; its maximum log K is in the
docs), ``stage/classes_covered``, ``stage/distance_bound`` (log(4 pi H2) / sqrt(2 H2)) and, with
``latent_distance_samples > 0``, ``stage/latent_distance``: the Monte-Carlo mean distance from a
prior point to the nearest prior point decoded into another class, to compare with the bound. That
search is O(n^2) in the number of points and meant for small latent spaces, so it is off by default.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from typing_extensions import override

from latentzoo.callbacks.base import PeriodicEvaluation, Stage
from latentzoo.metrics.diversity import ClassDiversity, nearest_other_class_distance
from latentzoo.metrics.extractors import DomainFeatures
from latentzoo.zoo import AutoencoderModule

__all__ = ["DiversityCallback"]


class DiversityCallback(PeriodicEvaluation):
    """Histogram of the evaluator's predictions on ``model.sample(n)``; H2, coverage, bound.

    Args:
        evaluator: Checkpoint written by ``latentzoo evaluator fit``.
        num_samples: Samples per evaluation, split over ranks.
        every_n_epochs: Evaluate after every k-th validation epoch and at the end of ``fit``
            (:class:`~latentzoo.callbacks.PeriodicEvaluation`); always at validate and test.
        latent_distance_samples: Prior points for the Monte-Carlo distance (0: off).
        batch_size: Generation batch size.
        seed: Seeds the samples (batch b uses ``seed + b``, on any number of ranks).
    """

    def __init__(
        self,
        evaluator: str,
        num_samples: int = 10_000,
        every_n_epochs: int = 5,
        latent_distance_samples: int = 0,
        batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        if num_samples < 1 or latent_distance_samples < 0:
            raise ValueError("num_samples must be >= 1 and latent_distance_samples >= 0")
        self.evaluator_path = evaluator
        self.num_samples = num_samples
        self.latent_distance_samples, self.batch_size, self.seed = (
            latent_distance_samples,
            batch_size,
            seed,
        )
        self.classifier: DomainFeatures | None = None
        self.metric: ClassDiversity | None = None

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
        for x in self.sample_batches(
            trainer, model, self.num_samples, self.batch_size, self.seed, True
        ):
            self.metric.update(self.classifier.predict(x))
        stats = self.metric.compute()  # collective: sums the counts over ranks
        self.metric.reset()
        out: dict[str, Tensor | float] = {
            k: v for k, v in stats.items() if k not in ("histogram", "h2_max")
        }
        if self.latent_distance_samples:
            out["latent_distance"] = self._latent_distance(model)
        return out

    def _latent_distance(self, model: AutoencoderModule) -> float:
        assert self.classifier is not None
        gen = torch.Generator().manual_seed(self.seed)  # the same points on every rank
        z = torch.randn(self.latent_distance_samples, model.latent_dim, generator=gen)
        z = z.to(model.device)
        labels = torch.cat(
            [self.classifier.predict(model.decode(b).clamp(0, 1)) for b in z.split(self.batch_size)]
        )
        return float(nearest_other_class_distance(z, labels))

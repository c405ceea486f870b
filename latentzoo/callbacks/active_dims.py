"""How many latent dimensions a model uses, logged after every validation epoch and at test.

Two measures, picked by the model (:meth:`~latentzoo.zoo.AutoencoderModule.latent_usage`):

* models that gate their own code (LMGAE's mask): the gate's count of open dimensions
  (:meth:`~latentzoo.zoo.AutoencoderModule.used_latent_dims`), and the gate vector itself, as in
  Mondal et al., "Towards Latent Space Optimality for Auto-Encoder Based Generative Models",
  fig. 5;
* every other model: Burda et al.'s active units, the dimensions whose posterior mean varies
  over the validation (or test) batches, Cov_x(E_q[z_j]) > 0.01
  (:mod:`latentzoo.metrics.active_units`).

Logged keys: ``val/active_dims`` (``test/active_dims`` at test) and an image of the
per-dimension vector over validation epochs (dimensions down, epochs across):
``val/mask_trajectory`` (gate values in [0, 1]) or ``val/latent_variance_trajectory`` (log10 of
Cov_x(E_q[z_j])).

Under DDP the variance is a torchmetrics state reduced over ranks, computed on every rank; the
gate is a parameter, which DDP keeps identical on every rank. Only drawing and handing the image
to the loggers is rank-zero work, and it calls no collective.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor
from typing_extensions import override

from latentzoo.callbacks.base import PeriodicEvaluation, Stage
from latentzoo.callbacks.log_media import run_dir
from latentzoo.metrics.active_units import BURDA_THRESHOLD, LatentVariance, active_units
from latentzoo.metrics.registry import EvaluationContext, MetricKey, register_model_metric
from latentzoo.zoo import AutoencoderModule

__all__ = ["ActiveDims", "render_trajectory", "trajectory_plot"]


@register_model_metric(
    "active_dims", (MetricKey("active_dims", (), None, "active latent dimensions", plotted=True),)
)
class ActiveDims(PeriodicEvaluation):
    """Log the number of active latent dimensions and a heat map of their trajectory.

    Runs after every validation epoch (``every_n_epochs=1``) on the validation batches the
    trainer feeds the model, so it needs no datamodule; and after every test epoch.

    Args:
        threshold: Burda et al.'s delta for models that do not gate their code (gated models
            count their own open dimensions).
    """

    def __init__(self, threshold: float = BURDA_THRESHOLD) -> None:
        super().__init__(every_n_epochs=1)
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.threshold = threshold
        self.trajectory: list[Tensor] = []  # one (latent_dim,) vector per validation epoch
        self._variance: LatentVariance | None = None
        self._gated = False  # whether the trajectory holds gate values (else variances)

    @classmethod
    def for_evaluation(cls, context: EvaluationContext, **options: Any) -> ActiveDims:
        """As :func:`latentzoo.evaluate` runs it: on the test batches."""
        return cls(**options)

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        model = self.check_model(pl_module)
        self._variance = LatentVariance(model.latent_dim).to(model.device)

    def _update(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any) -> None:
        model = self.check_model(pl_module)
        if trainer.sanity_checking or self._variance is None or model.latent_usage() is not None:
            return
        mean, _ = model.posterior(batch[0])
        self._variance.update(mean)  # (B, latent_dim)

    @override
    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update(trainer, pl_module, batch)

    @override
    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update(trainer, pl_module, batch)

    @override
    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> dict[str, float]:
        usage = model.latent_usage()  # (latent_dim,) or None
        if usage is not None:
            dims = model.used_latent_dims()
            vector, count = usage.float().cpu(), len(usage) if dims is None else len(dims)
        else:
            assert self._variance is not None, "setup() builds the metric"
            if int(self._variance.count) == 0:  # no batch since the last evaluation (end of fit)
                return {}
            variance = self._variance.compute()  # a collective under DDP: every rank runs it
            self._variance.reset()
            vector, count = variance.float().cpu(), active_units(variance, self.threshold)
        if stage == "val":
            self.trajectory.append(vector)
            self._gated = usage is not None
        return {"active_dims": float(count)}

    @override
    def rank_zero_media(self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage) -> None:
        if stage != "val" or not self.trajectory:
            return
        key = "val/mask_trajectory" if self._gated else "val/latent_variance_trajectory"
        image = render_trajectory(torch.stack(self.trajectory), masked=self._gated)
        step = trainer.global_step
        logged = False
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, image, step, dataformats="HWC")
                logged = True
            elif isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[image], step=step)
                logged = True
        if not logged:  # CSV or no logger: a PNG beside the logs
            path = run_dir(trainer) / f"{key.replace('/', '_')}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            import matplotlib.image

            matplotlib.image.imsave(path, image)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"trajectory": [v.tolist() for v in self.trajectory]}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.trajectory = [torch.tensor(v) for v in state_dict["trajectory"]]


def render_trajectory(trajectory: Tensor, masked: bool) -> np.ndarray:
    """A heat map of (epochs, latent_dim) values as an RGB image (H, W, 3) uint8
    (:func:`trajectory_plot`)."""
    fig = trajectory_plot(trajectory, masked)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)


def trajectory_plot(trajectory: Tensor, masked: bool) -> Figure:
    """The heat map of (epochs, latent_dim) values: mask values on [0, 1], variances as log10,
    clipped at 1e-4; titled, axes and colour bar in words."""
    values = trajectory.T.numpy()  # (latent_dim, epochs)
    if not masked:
        values = np.log10(np.clip(values, 1e-4, None))
    fig = Figure(figsize=(max(4.5, 2 + 0.15 * values.shape[1]), max(3.2, 1.2 + 0.15 * len(values))))
    ax = fig.add_subplot()
    limits = (
        {"vmin": 0.0, "vmax": 1.0} if masked else {"vmin": -4.0, "vmax": math.ceil(values.max())}
    )
    im = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis", **limits)
    fig.colorbar(
        im, ax=ax, label="mask value" if masked else "log10 variance of the posterior mean"
    )
    ax.set_xlabel("validation epoch")
    ax.set_ylabel("latent dimension")
    ax.set_title("The model's mask per latent dimension" if masked else
                 "Activity per latent dimension (Burda et al.: active above -2)",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig

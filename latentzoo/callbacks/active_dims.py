"""How many latent dimensions a model uses, logged after every validation epoch.

Two measures, picked by the model:

* models with a latent mask (LMGAE, anything that has ``mask`` and ``active_dims``): the mask's
  count of open dimensions, and the mask vector itself, as in Mondal et al., "Towards Latent
  Space Optimality for Auto-Encoder Based Generative Models", fig. 5;
* every other model: Burda et al.'s active units, the dimensions whose posterior mean varies
  over the validation set, Cov_x(E_q[z_j]) > 0.01 (:mod:`latentzoo.metrics.active_units`).

Logged keys: ``val/active_dims`` (scalar) and an image of the per-dimension vector over epochs
(dimensions down, epochs across): ``val/mask_trajectory`` (mask values in [0, 1]) or
``val/latent_variance_trajectory`` (log10 of Cov_x(E_q[z_j])).

Under DDP the variance is a torchmetrics state reduced over ranks, computed on every rank; the
mask is a parameter, which DDP keeps identical on every rank. Only drawing and handing the image
to the loggers is rank-zero work, and it calls no collective.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor
from typing_extensions import override

from latentzoo.metrics.active_units import BURDA_THRESHOLD, LatentVariance, active_units

__all__ = ["ActiveDims", "MaskedLatentModel"]


@runtime_checkable
class MaskedLatentModel(Protocol):
    """A model whose latent code is gated by a learned mask (e.g. :class:`~latentzoo.zoo.LMGAE`)."""

    @property
    def mask(self) -> Tensor: ...

    @property
    def active_dims(self) -> int: ...


class ActiveDims(L.Callback):
    """Log the number of active latent dimensions and a heat map of their trajectory.

    Args:
        threshold: Burda et al.'s delta for models without a mask (masked models use their own
            ``mask_threshold``).
    """

    def __init__(self, threshold: float = BURDA_THRESHOLD) -> None:
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.threshold = threshold
        self.trajectory: list[Tensor] = []  # one (latent_dim,) vector per validation epoch
        self._variance: LatentVariance | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        latent_dim = getattr(pl_module, "latent_dim", None)
        if not isinstance(latent_dim, int):
            raise TypeError(
                f"ActiveDims needs a model with an integer latent_dim (a latentzoo "
                f"AutoencoderModule); {type(pl_module).__name__} has none"
            )
        self._variance = LatentVariance(latent_dim).to(pl_module.device)

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
        if isinstance(pl_module, MaskedLatentModel) or self._variance is None:
            return
        mean, _ = pl_module.posterior(batch[0])  # type: ignore[operator]
        self._variance.update(mean)  # (B, latent_dim)

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if isinstance(pl_module, MaskedLatentModel):
            vector, count = pl_module.mask.detach().float().cpu(), pl_module.active_dims
            key = "val/mask_trajectory"
        else:
            assert self._variance is not None, "setup() builds the metric"
            variance = self._variance.compute()  # a collective under DDP: every rank runs it
            self._variance.reset()
            vector, count = variance.float().cpu(), active_units(variance, self.threshold)
            key = "val/latent_variance_trajectory"
        if trainer.sanity_checking:
            return
        pl_module.log("val/active_dims", float(count))
        self.trajectory.append(vector)
        self._log_image(trainer, key)

    @rank_zero_only
    def _log_image(self, trainer: L.Trainer, key: str) -> None:
        image = render_trajectory(torch.stack(self.trajectory), masked=key == "val/mask_trajectory")
        step = trainer.global_step
        logged = False
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, image, step, dataformats="HWC")
                logged = True
            elif isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[image], step=step)
                logged = True
        if not logged and trainer.log_dir is not None:  # CSV or no logger: a PNG beside the logs
            path = Path(trainer.log_dir) / f"{key.replace('/', '_')}.png"
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
    """A heat map of (epochs, latent_dim) values as an RGB image (H, W, 3) uint8.

    Mask values are drawn on [0, 1]; variances as log10, clipped at 1e-4.
    """
    values = trajectory.T.numpy()  # (latent_dim, epochs)
    if not masked:
        values = np.log10(np.clip(values, 1e-4, None))
    fig = Figure(figsize=(max(4.0, 2 + 0.15 * values.shape[1]), max(3.0, 1 + 0.15 * len(values))))
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    limits = (
        {"vmin": 0.0, "vmax": 1.0} if masked else {"vmin": -4.0, "vmax": math.ceil(values.max())}
    )
    im = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis", **limits)
    fig.colorbar(im, ax=ax, label="mask" if masked else "log10 Cov(E[z_j])")
    ax.set_xlabel("validation epoch")
    ax.set_ylabel("latent dimension")
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)

"""Log images and figures to whatever loggers the trainer has.

Lightning's loggers have no common image call: TensorBoard takes ``add_image``, W&B takes
``log_image``, and CSV takes nothing. :func:`log_image` dispatches on the logger's type and, for
any logger with a folder but no image API (CSV, or none at all), writes a PNG to
``<log_dir>/images/<key with '/' as '_'>_step<N>.png`` so no run loses its pictures.

Call these from rank-zero-only code; they do no collective work.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure_to_image", "image_grid", "log_image", "run_dir", "save_png"]


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """(B, C, H, W) in [0, 1] -> one (3, H', W') grid with 2-pixel gaps; grey becomes RGB."""
    from torchvision.utils import make_grid

    x = images.detach().float().clamp(0, 1).cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return make_grid(x, nrow=nrow, padding=2, pad_value=1.0)


def figure_to_image(fig: Figure) -> Tensor:
    """A matplotlib figure rendered to a (3, H, W) float tensor in [0, 1]; the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    rgba = plt.imread(buf)  # (H, W, 4) float in [0, 1]
    return torch.from_numpy(np.ascontiguousarray(rgba[..., :3])).permute(2, 0, 1)


def save_png(image: Tensor, path: Path) -> None:
    """Write a (3, H, W) image in [0, 1] as a PNG (atomically: a killed run leaves none)."""
    from PIL import Image

    hwc = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(hwc).save(tmp)
    tmp.replace(path)


def run_dir(trainer: L.Trainer) -> Path:
    """The run's folder: the first logger's ``log_dir`` (TensorBoard, CSV) or ``save_dir`` (W&B),
    else the trainer's root folder.

    Unlike ``trainer.log_dir`` this calls no collective, so rank-zero-only code may use it.
    """
    logger = trainer.logger
    folder = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
    return Path(folder or trainer.default_root_dir)


def log_image(trainer: L.Trainer, key: str, image: Tensor, caption: str | None = None) -> None:
    """Log a (3, H, W) image in [0, 1] under ``key`` at the trainer's global step.

    TensorBoard: ``add_image``; W&B: ``log_image`` (a ``wandb.Image`` in the run's history);
    loggers without an image API, or no logger: a PNG file (see the module docstring).
    """
    step = trainer.global_step
    hwc = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    wrote_png = False
    loggers: list[object] = list(trainer.loggers) or [None]
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image.clamp(0, 1).cpu(), global_step=step)
        elif isinstance(logger, WandbLogger):
            extra = {"caption": [caption]} if caption else {}
            logger.log_image(key=key, images=[hwc], step=step, **extra)
        elif not wrote_png:
            from PIL import Image

            folder = run_dir(trainer) / "images"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(hwc).save(folder / f"{key.replace('/', '_')}_step{step}.png")
            wrote_png = True

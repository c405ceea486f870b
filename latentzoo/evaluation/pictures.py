"""The samples of an evaluation as a picture: a grid of samples (images) or a scatter of samples
over the data (vectors), saved as a PNG file by :class:`SampleFigure` while the model is
scored (:func:`latentzoo.evaluate` with an output folder)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from typing_extensions import override

from latentzoo.callbacks.batches import dataset_tensors, generated_batches
from latentzoo.callbacks.log_media import figure_to_image, image_grid, save_png
from latentzoo.datamodules.base import to_model_input
from latentzoo.zoo import AutoencoderModule

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SampleFigure", "sample_grid_plot", "vector_scatter", "vector_scatter_plot"]

GRID_SIDE = 8  # an 8x8 grid of images
SCATTER_POINTS = 1000  # samples and data points in a vector scatter


def sample_grid_plot(samples: Tensor, title: str) -> Figure:
    """An 8x8 grid of images (B, C, H, W) in [0, 1] under a title, as a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = image_grid(samples[: GRID_SIDE**2], nrow=GRID_SIDE)  # (3, H, W)
    fig, ax = plt.subplots(figsize=(5, 5.3), layout="constrained")
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    return fig


def vector_scatter_plot(samples: Tensor, data: Tensor, title: str) -> Figure:
    """Samples over data, both (N, D), on the data's two leading principal directions (the
    coordinates themselves when D <= 2), as a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, samples = data.double().cpu(), samples.double().cpu()
    if data.shape[1] > 2:
        mean = data.mean(0)
        _, s, v = torch.linalg.svd(data - mean, full_matrices=False)
        basis = v[:2].T  # (D, 2)
        share = (s[:2] ** 2 / (s**2).sum()).tolist()
        data, samples = (data - mean) @ basis, (samples - mean) @ basis  # (N, 2), (M, 2)
        labels = (
            f"1st principal direction of the test data ({share[0]:.0%} of its variance)",
            f"2nd principal direction ({share[1]:.0%})",
        )
    else:
        data = torch.cat([data, torch.zeros_like(data)], 1)[:, :2]
        samples = torch.cat([samples, torch.zeros_like(samples)], 1)[:, :2]
        labels = ("x1", "x2")
    fig, ax = plt.subplots(figsize=(5.5, 5.5), layout="constrained")
    ax.scatter(data[:, 0], data[:, 1], s=3, alpha=0.4, c="0.6", label="test data")
    ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.5, c="tab:blue", label="samples")
    ax.set(xlabel=labels[0], ylabel=labels[1])
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8, markerscale=3)
    return fig


def vector_scatter(samples: Tensor, data: Tensor, title: str) -> Tensor:
    """:func:`vector_scatter_plot` as a (3, H, W) image."""
    return figure_to_image(vector_scatter_plot(samples, data, title))


class SampleFigure(Callback):
    """At the end of ``test``, save the samples of ``model.sample`` (the sampler in use) to
    ``path``: an 8x8 grid of images, or for vector data a scatter over the test data.

    Args:
        path: The PNG file to write.
        seed: Seeds the samples (as the metrics' ``seed`` does).
        title: Shown above the grid or the scatter.
    """

    def __init__(self, path: Path, seed: int = 0, title: str = "") -> None:
        self.path, self.seed, self.title = Path(path), seed, title

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        assert isinstance(pl_module, AutoencoderModule)
        images = len(pl_module.data_shape) == 3
        n = GRID_SIDE**2 if images else SCATTER_POINTS
        with torch.no_grad():
            samples = next(generated_batches(pl_module, n, n, self.seed, clamp=images))
        if images:
            save_png(figure_to_image(sample_grid_plot(samples, self.title)), self.path)
            return
        data = to_model_input(dataset_tensors(trainer, "test")[0][:SCATTER_POINTS])
        save_png(vector_scatter(samples, data, self.title), self.path)

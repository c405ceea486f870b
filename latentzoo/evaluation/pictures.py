"""The samples of an evaluation as a picture: a grid of samples (images) or a scatter of samples
over the data (vectors), saved as a PNG file by :class:`SampleFigure` while the model is
scored (:func:`latentzoo.evaluate` with an output folder)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from typing_extensions import override

from latentzoo.callbacks.batches import dataset_tensors, generated_batches
from latentzoo.callbacks.log_media import figure_to_image, image_grid, save_png
from latentzoo.datamodules.base import to_model_input
from latentzoo.zoo import AutoencoderModule

__all__ = ["SampleFigure", "vector_scatter"]

GRID_SIDE = 8  # an 8x8 grid of images
SCATTER_POINTS = 1000  # samples and data points in a vector scatter


def vector_scatter(samples: Tensor, data: Tensor, title: str) -> Tensor:
    """Samples over data, both (N, D), on the data's two leading principal components, as a
    (3, H, W) image (the coordinates themselves when D <= 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, samples = data.double().cpu(), samples.double().cpu()
    if data.shape[1] > 2:
        mean = data.mean(0)
        _, _, v = torch.linalg.svd(data - mean, full_matrices=False)
        basis = v[:2].T  # (D, 2)
        data, samples = (data - mean) @ basis, (samples - mean) @ basis  # (N, 2), (M, 2)
        labels = ("PC1 of the data", "PC2 of the data")
    else:
        data = torch.cat([data, torch.zeros_like(data)], 1)[:, :2]
        samples = torch.cat([samples, torch.zeros_like(samples)], 1)[:, :2]
        labels = ("x1", "x2")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(data[:, 0], data[:, 1], s=3, alpha=0.3, c="grey", label="test data")
    ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.5, c="C0", label="samples")
    ax.set(xlabel=labels[0], ylabel=labels[1], title=title)
    ax.legend(loc="upper right", fontsize=8)
    return figure_to_image(fig)


class SampleFigure(Callback):
    """At the end of ``test``, save the samples of ``model.sample`` (the sampler in use) to
    ``path``: an 8x8 grid of images, or for vector data a scatter over the test data.

    Args:
        path: The PNG file to write.
        seed: Seeds the samples (as the metrics' ``seed`` does).
        title: Shown above a vector scatter.
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
            save_png(image_grid(samples, nrow=GRID_SIDE), self.path)
            return
        data = to_model_input(dataset_tensors(trainer, "test")[0][:SCATTER_POINTS])
        save_png(vector_scatter(samples, data, self.title), self.path)

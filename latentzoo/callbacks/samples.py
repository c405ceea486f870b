"""Pictures of a model: samples, reconstructions, interpolations, per-dimension traversals.

Logged as images, every k validation epochs and at test, to whatever loggers the trainer has
(TensorBoard, W&B, or PNG files for CSV; see :mod:`latentzoo.callbacks.log_media`):

- ``samples/grid``: ``model.sample(n)`` from a fixed seed, so successive grids are comparable;
- ``samples/reconstructions``: held-out inputs (odd rows) above their reconstructions (even rows);
- ``samples/interpolations``: each row decodes z = (1 - t) z_a + t z_b from the code of one
  held-out input to the code of another (linear, as in most AE papers; spherical interpolation
  matters for high-d priors but not for the codes of held-out data);
- ``samples/traversals``: row j decodes the code of one input with dimension j swept over
  [-3, 3] (Higgins et al. 2017's beta-VAE figure), for the first ``max_traversal_dims`` dims.

The pictures are made on rank 0 only and never call a collective: a model's forward pass under
DDP with batch norm in eval mode involves no communication.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from typing_extensions import override

from latentzoo.callbacks.base import PeriodicEvaluation, Stage
from latentzoo.callbacks.batches import dataset_tensors, generated_batches
from latentzoo.callbacks.log_media import image_grid, log_image
from latentzoo.datamodules.base import to_model_input
from latentzoo.zoo import AutoencoderModule

__all__ = ["SampleImages"]


class SampleImages(PeriodicEvaluation):
    """Sample grid, reconstructions, interpolations and traversals as logged images.

    Args:
        num_samples: Samples in ``samples/grid`` (a square number fills the grid).
        num_inputs: Held-out inputs in ``samples/reconstructions``.
        steps: Columns of interpolations and traversals.
        num_interpolations: Rows of ``samples/interpolations``.
        max_traversal_dims: Rows of ``samples/traversals`` (the first latent dims).
        traversal_range: Traversals sweep each dim over [-r, r].
        every_n_epochs: Log after every k-th validation epoch and at the end of ``fit``; always
            at validate and test.
        seed: Seeds the samples, so grids from different epochs show the same z.
    """

    def __init__(
        self,
        num_samples: int = 64,
        num_inputs: int = 16,
        steps: int = 8,
        num_interpolations: int = 4,
        max_traversal_dims: int = 10,
        traversal_range: float = 3.0,
        every_n_epochs: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        if min(num_samples, num_inputs, num_interpolations, max_traversal_dims) < 1:
            raise ValueError("num_samples, num_inputs, num_interpolations, max_traversal_dims >= 1")
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        self.num_samples, self.num_inputs, self.steps = num_samples, num_inputs, steps
        self.num_interpolations, self.max_traversal_dims = num_interpolations, max_traversal_dims
        self.traversal_range, self.seed = traversal_range, seed

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        shape = self.check_model(pl_module).data_shape
        if len(shape) != 3:
            raise ValueError(
                f"SampleImages draws images, but the model's data have shape {shape}; drop the "
                "callback for vector data (the holes and FID callbacks still apply)"
            )

    @override
    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> dict[str, float]:
        return {}  # pictures only, made on rank 0 (rank_zero_media)

    @override
    def rank_zero_media(self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage) -> None:
        for key, image in self.pictures(trainer, model, stage).items():
            log_image(trainer, key, image)

    @torch.no_grad()
    def pictures(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> dict[str, Tensor]:
        """The four pictures as (3, H, W) images in [0, 1], keyed by their logging keys."""
        x_all, _ = dataset_tensors(trainer, "test" if stage == "test" else "val")
        n_in = min(self.num_inputs, len(x_all))
        x = to_model_input(x_all[:n_in].to(model.device))  # (n, C, H, W)
        samples = next(
            generated_batches(model, self.num_samples, self.num_samples, self.seed, True)
        )
        recon = model.reconstruct(x).clamp(0, 1)
        cols = min(8, n_in)
        pairs = torch.stack(
            [
                x[: n_in // cols * cols].unflatten(0, (-1, cols)),
                recon[: n_in // cols * cols].unflatten(0, (-1, cols)),
            ],
            1,
        )
        nrow = max(1, int(self.num_samples**0.5))
        return {
            "samples/grid": image_grid(samples, nrow=nrow),
            "samples/reconstructions": image_grid(pairs.flatten(0, 2), nrow=cols),
            "samples/interpolations": image_grid(self._interpolations(model, x), nrow=self.steps),
            "samples/traversals": image_grid(self._traversals(model, x[:1]), nrow=self.steps),
        }

    def _interpolations(self, model: AutoencoderModule, x: Tensor) -> Tensor:
        k = min(self.num_interpolations, len(x) // 2)
        z = model.encode(x[: 2 * max(k, 1)])  # (2k, d)
        za, zb = (z[:k], z[k : 2 * k]) if k else (z[:1], z[:1])
        t = torch.linspace(0, 1, self.steps, device=z.device)[None, :, None]  # (1, S, 1)
        path = (1 - t) * za[:, None] + t * zb[:, None]  # (k, S, d)
        return model.decode(path.flatten(0, 1)).clamp(0, 1)  # (k*S, C, H, W)

    def _traversals(self, model: AutoencoderModule, x: Tensor) -> Tensor:
        z = model.encode(x)[0]  # (d,)
        dims = min(self.max_traversal_dims, len(z))
        values = torch.linspace(
            -self.traversal_range, self.traversal_range, self.steps, device=z.device
        )
        codes = z.repeat(dims, self.steps, 1)  # (dims, S, d)
        codes[torch.arange(dims), :, torch.arange(dims)] = values
        return model.decode(codes.flatten(0, 1)).clamp(0, 1)  # (dims*S, C, H, W)

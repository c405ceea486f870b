"""A new evaluation on the public base: the mean norm of the codes against the prior's.

For z ~ N(0, I_d), E||z|| = sqrt(2) Gamma((d + 1) / 2) / Gamma(d / 2) (the chi distribution's
mean, about sqrt(d - 1/2)); encodings much shorter or longer than that leave prior mass unused.

    latentzoo fit --trainer.callbacks+=latent_norm.LatentNorm   # with docs/examples on PYTHONPATH
"""

import math

import lightning as L
from torch import Tensor
from torchmetrics import MeanMetric

from latentzoo.callbacks import PeriodicEvaluation, Stage
from latentzoo.zoo import AutoencoderModule


def prior_norm(d: int) -> float:
    """E||z|| for z ~ N(0, I_d)."""
    return math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


class LatentNorm(PeriodicEvaluation):
    """Logs ``{stage}/latent_norm`` (mean ||encode(x)|| over held-out data) and its ratio to
    ``prior_norm(latent_dim)``, ``{stage}/latent_norm_ratio``."""

    def __init__(
        self, num_inputs: int = 5000, batch_size: int = 500, every_n_epochs: int = 1
    ) -> None:
        super().__init__(every_n_epochs)
        self.num_inputs, self.batch_size = num_inputs, batch_size

    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> dict[str, Tensor]:
        split = "test" if stage == "test" else "val"
        mean = MeanMetric().to(model.device)  # torchmetrics state: averaged over DDP ranks
        for x in self.real_batches(trainer, model, split, self.num_inputs, self.batch_size):
            mean.update(model.encode(x).norm(dim=1))  # (B,)
        norm = mean.compute()
        return {"latent_norm": norm, "latent_norm_ratio": norm / prior_norm(model.latent_dim)}

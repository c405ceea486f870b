"""2-stage VAE (Dai & Wipf 2019, "Diagnosing and enhancing VAE models").

Stage 1 is a VAE on x whose decoder is N(x; mu(z), gamma I) with one *learned* scalar gamma
(eq. (3); :class:`latentzoo.zoo.likelihoods.GaussianGamma`). As gamma -> 0 the reconstructions
sharpen and the latent dimensions the data do not need collapse to the prior, so the aggregated
posterior q(u) = E_x q(u|x) lives on a lower-dimensional manifold and differs from N(0, I):
decoding prior draws gives poor samples (sec. 3). Stage 2 is a second, small VAE with learned
gamma trained on codes u ~ q(u|x) of the frozen stage 1; its aggregated posterior does match
N(0, I) (Theorem 2 applied to r = kappa = latent_dim), so sampling goes

    z ~ N(0, I) -> u = stage-2 decoder mean(z) -> x = stage-1 decoder mean(u).

Both stages train in one ``fit``, as two phases of the engine in :mod:`latentzoo.zoo.phases`
whose ``active`` rule is the epoch: epochs ``[0, stage1_epochs)`` step stage 1's optimizer, the
next ``stage2_epochs`` step stage 2's, and training stops after both. Every batch is one
``global_step`` in either stage. The stage is a function of the epoch counter, so a checkpoint
from either stage resumes in that stage with both optimizers' states. ``stage1_checkpoint``
trains stage 2 alone on the stage 1 of another run. Stage 2 is the same
:class:`~latentzoo.zoo.samplers.SecondStageVAE` that the ``two_stage`` latent sampler fits after
training.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import GaussianGamma, adam_with_gamma
from latentzoo.zoo.phases import Phase, PhasedAutoencoder
from latentzoo.zoo.registry import register_model
from latentzoo.zoo.samplers import SecondStage, SecondStageVAE
from latentzoo.zoo.vae import VAE

__all__ = ["TwoStageVAE"]

_STAGE1_PREFIXES = ("encoder.", "decoder.", "likelihood.")


@register_model
class TwoStageVAE(VAE, PhasedAutoencoder):
    """VAE with learned decoder variance and a second-stage VAE as its prior.

    Stage 1's prior is N(0, I), as in Dai & Wipf's analysis: the second stage is the learned
    prior of this model, so it takes no ``prior`` argument (the VAE's default is kept).

    Args:
        data_shape: See :class:`AutoencoderModule`.
        latent_dim: Dimension of the stage-1 code u, which is also stage 2's data and latent
            dimension (as in the paper).
        stage1_epochs: Epochs of stage 1; stage 2 starts at this epoch.
        stage2_epochs: Epochs of stage 2, after which training stops. Set the trainer's
            ``max_epochs`` to at least the sum (the configs do).
        stage2_width: Width of stage 2's MLPs (``4 * width`` units per hidden layer).
        stage2_lr: Adam's learning rate for stage 2.
        stage1_checkpoint: A Lightning checkpoint (of a ``TwoStageVAE``, or of a ``VAE`` with
            ``likelihood="gaussian_gamma"`` and the same shape) whose stage 1 is loaded at the
            start of ``fit``; stage 1 is then not trained and stage 2 starts at epoch 0.
        gamma_lr: Adam's learning rate for both stages' gamma (see
            :func:`latentzoo.zoo.likelihoods.adam_with_gamma`).
        width: See :class:`AutoencoderModule` (stage 1's nets).
        lr: Adam's learning rate for stage 1.
    """

    likelihood: GaussianGamma

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        stage1_epochs: int = 10,
        stage2_epochs: int = 10,
        stage2_width: int = 64,
        stage2_lr: float = 1e-3,
        stage1_checkpoint: str | None = None,
        gamma_lr: float = 1e-2,
        width: int = 32,
        lr: float = 1e-3,
    ) -> None:
        super().__init__(
            data_shape=data_shape,
            latent_dim=latent_dim,
            likelihood="gaussian_gamma",
            decoder_sigma=0.1,
            width=width,
            lr=lr,
        )
        if stage2_epochs < 1 or stage1_epochs < 0:
            raise ValueError(
                f"need stage1_epochs >= 0 and stage2_epochs >= 1, got {stage1_epochs}, "
                f"{stage2_epochs}"
            )
        if stage1_epochs == 0 and stage1_checkpoint is None:
            raise ValueError(
                "stage1_epochs=0 would train stage 2 on an untrained stage 1; give "
                "stage1_checkpoint=<a stage-1 checkpoint> or stage1_epochs >= 1"
            )
        self.stage1_epochs = 0 if stage1_checkpoint is not None else stage1_epochs
        self.stage2_epochs = stage2_epochs
        self.stage2_lr = stage2_lr
        self.gamma_lr = gamma_lr
        self.stage1_checkpoint = stage1_checkpoint
        self.stage2 = SecondStageVAE(latent_dim, stage2_width, stage2_lr, gamma_lr)

    # -- stages -----------------------------------------------------------------------------------
    @property
    def stage(self) -> int:
        """1 while stage 1 trains, 2 from epoch ``stage1_epochs`` on."""
        return 1 if self.current_epoch < self.stage1_epochs else 2

    def load_stage1(self, path: str) -> None:
        """Copy encoder, decoder and gamma from the checkpoint at ``path``."""
        state = torch.load(path, map_location=self.device, weights_only=True)["state_dict"]
        stage1 = {k: v for k, v in state.items() if k.startswith(_STAGE1_PREFIXES)}
        wanted = {k for k in self.state_dict() if k.startswith(_STAGE1_PREFIXES)}
        if set(stage1) != wanted:
            raise ValueError(
                f"{path} does not hold a stage 1 for this model (a TwoStageVAE, or a VAE with "
                f"likelihood='gaussian_gamma', of data_shape={self.data_shape}, latent_dim="
                f"{self.latent_dim}, width={self.width}); missing {sorted(wanted - set(stage1))}, "
                f"unexpected {sorted(set(stage1) - wanted)}"
            )
        self.load_state_dict(stage1, strict=False)

    # -- sampling: z -> stage 2 -> u -> stage 1 ---------------------------------------------------
    @override
    def generative_prior(self) -> LatentDensity:
        """Stage 2 as a density: codes u = stage-2 decoder mean(z), z ~ N(0, I)."""
        density = self.__dict__.get("_stage2_density")
        if density is None or density.vae is not self.stage2:
            density = self.__dict__["_stage2_density"] = SecondStage.around(self.stage2)
        return density

    # -- losses -----------------------------------------------------------------------------------
    def stage2_losses(self, x: Tensor) -> dict[str, Tensor]:
        """Stage 2's negative ELBO (``loss``) on u ~ q(u|x) of the frozen stage 1, its terms
        prefixed ``stage2_``."""
        with torch.no_grad():
            mu, logvar = self.posterior(x)
        losses = self.stage2.code_losses(mu, logvar)
        return {k if k == "loss" else f"stage2_{k}": v for k, v in losses.items()}

    def stage1_losses(self, x: Tensor) -> dict[str, Tensor]:
        """Stage 1's negative ELBO on x (the VAE's terms) and its gamma."""
        losses = super().compute_losses(x)
        losses["gamma"] = self.likelihood.gamma.detach()
        return losses

    @override
    def compute_losses(self, x: Tensor) -> dict[str, Tensor]:
        """Both stages' terms; ``loss`` is their sum (the stages share no parameters)."""
        stage1 = self.stage1_losses(x)
        stage2 = self.stage2_losses(x)
        return {
            **stage1,
            **{k: v for k, v in stage2.items() if k != "loss"},
            "stage2_loss": stage2["loss"],
            "loss": stage1["loss"] + stage2["loss"],
        }

    # -- training ---------------------------------------------------------------------------------
    @override
    def on_fit_start(self) -> None:
        super().on_fit_start()
        # After the weights of a resumed run are restored (they hold the stage 1 already; its
        # file may be gone) and before the first step.
        if self.stage1_checkpoint is not None and self.trainer.ckpt_path is None:
            self.load_stage1(self.stage1_checkpoint)
        total = self.stage1_epochs + self.stage2_epochs
        max_epochs = self.trainer.max_epochs
        if (
            not getattr(self.trainer, "fast_dev_run", False)
            and max_epochs is not None
            and 0 <= max_epochs < total
        ):
            rank_zero_warn(
                f"trainer.max_epochs={max_epochs} ends training before the 2-stage VAE's "
                f"{self.stage1_epochs} + {self.stage2_epochs} epochs; set max_epochs={total}"
            )

    def stage1_modules(self) -> nn.ModuleDict:
        """Encoder, decoder and gamma: what stage 1 trains."""
        return nn.ModuleDict(
            {"encoder": self.encoder, "decoder": self.decoder, "likelihood": self.likelihood}
        )

    @override
    def phases(self) -> list[Phase]:
        """Stage 1, then stage 2, each with Adam (gamma at ``gamma_lr``), active by epoch."""
        adam = partial(adam_with_gamma, gamma_lr=self.gamma_lr)
        return [
            Phase(
                "stage1",
                self.stage1_losses,
                self.stage1_modules(),
                self.lr,
                optimizer=adam,
                active=lambda: self.stage == 1,
            ),
            Phase(
                "stage2",
                self.stage2_losses,
                self.stage2,
                self.stage2_lr,
                optimizer=adam,
                active=lambda: self.stage == 2,
            ),
        ]

    @override
    def begin_batch(self, x: Tensor) -> None:
        if self.stage == 2:
            self.encoder.eval()  # stage 1 is frozen, its batch-norm statistics included

    @override
    def end_batch(self, terms: dict[str, Tensor], logged: bool) -> None:
        if logged:
            self.log("train/stage", float(self.stage))

    @override
    def on_train_epoch_end(self) -> None:
        if self.current_epoch + 1 >= self.stage1_epochs + self.stage2_epochs:
            self.trainer.should_stop = True

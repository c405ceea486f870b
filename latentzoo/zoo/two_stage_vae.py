"""2-stage VAE (Dai & Wipf 2019, "Diagnosing and enhancing VAE models").

Stage 1 is a VAE on x whose decoder is N(x; mu(z), gamma I) with one *learned* scalar gamma
(eq. (3); :class:`latentzoo.zoo.likelihoods.GaussianGamma`; the paper's gamma is a variance, as
here, the authors' code's a standard deviation: their ``loggamma`` is log sqrt(gamma)). As
gamma -> 0 the reconstructions sharpen and the latent dimensions the data do not need collapse
to the prior, so the aggregated posterior q(u) = E_x q(u|x) lives on a lower-dimensional
manifold and differs from N(0, I): decoding prior draws gives poor samples (sec. 3). Stage 2
is a second VAE with learned gamma trained on codes u ~ q(u|x) of the frozen stage 1; its
aggregated posterior does match N(0, I) (Theorem 2 with r = kappa = latent_dim); sampling goes

    z ~ N(0, I) -> u = stage-2 decoder mean(z) + sqrt(gamma_2) eps -> x = stage-1 decoder mean(u)

(the authors add the stage-2 decoder's noise; ``sample_noise=False`` keeps the mean). The recipes:

* ``authors`` (daib13/TwoStageVAE @ 8718623, ``demo.py`` and ``network/two_stage_vae_model.py``):
  stage 2 of 3 x 1024 ReLU layers with its input concatenated before the output heads
  (:class:`~latentzoo.zoo.nets.SkipMLP`); Adam at 1e-4 for both stages, gamma at the nets' rate,
  halved every 150 (stage 1) and 300 (stage 2) epochs; the noise added when sampling.
* ``latentzoo`` (the earlier default): stage 2 of 2 x 256 LeakyReLU layers, no skip; Adam at 1e-3,
  gamma at 1e-2 (it lags the reconstruction error at 1e-3), constant; the decoder's mean.

Both give stage 2 twice stage 1's epochs unless told (the authors' 400 and 800).

Both stages train in one ``fit``, as two phases of the engine in :mod:`latentzoo.zoo.phases`
whose ``active`` rule is the epoch: epochs ``[0, stage1_epochs)`` step stage 1's optimizer, the
next ``stage2_epochs`` step stage 2's, and training stops after both. Every batch is one
``global_step`` in either stage. The stage is a function of the epoch counter, so a checkpoint
from either stage resumes in that stage with both optimizers' states. ``stage1_checkpoint``
trains stage 2 alone on the stage 1 of another run. Stage 2 is the same
:class:`~latentzoo.zoo.second_stage.SecondStageVAE` that the ``two_stage`` latent sampler fits
after training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import GaussianGamma, adam_with_gamma
from latentzoo.zoo.phases import Phase, PhasedAutoencoder
from latentzoo.zoo.recipes import LegacyRecipes, Recipe, with_overrides
from latentzoo.zoo.registry import register_model
from latentzoo.zoo.second_stage import SecondStage, SecondStageVAE
from latentzoo.zoo.vae import VAE

__all__ = ["TwoStageRecipe", "TwoStageVAE"]

_STAGE1_PREFIXES = ("encoder.", "decoder.", "likelihood.")


@dataclass(frozen=True)
class TwoStageRecipe:
    """What a recipe sets; an argument left at None takes the value here."""

    stage2_width: int  # a quarter of stage 2's units per hidden layer
    stage2_network: Literal["dai_wipf", "mlp"]
    sample_noise: bool
    lr: float
    stage2_lr: float
    gamma_lr: float | None  # None: each stage's lr
    halve_every: tuple[int, int] | None  # epochs between halvings of stage 1's and stage 2's lr


RECIPES: dict[str, Callable[[], TwoStageRecipe]] = {
    # demo.py: lr 1e-4 x 0.5^floor(epoch / 150) and lr2 1e-4 x 0.5^floor(epoch / 300);
    # loggamma trained by the same Adam; second_depth 3, second_dim 1024.
    "authors": lambda: TwoStageRecipe(256, "dai_wipf", True, 1e-4, 1e-4, None, (150, 300)),
    "latentzoo": lambda: TwoStageRecipe(64, "mlp", False, 1e-3, 1e-3, 1e-2, None),
}


@register_model
class TwoStageVAE(LegacyRecipes, VAE, PhasedAutoencoder):
    """VAE with learned decoder variance and a second-stage VAE as its prior.

    Stage 1's prior is N(0, I), as in Dai & Wipf's analysis: the second stage is the learned
    prior of this model, so it takes no ``prior`` argument (the VAE's default is kept).

    Args:
        data_shape: See :class:`AutoencoderModule`.
        latent_dim: Dimension of the stage-1 code u, which is also stage 2's data and latent
            dimension (as in the paper).
        recipe: ``authors`` or ``latentzoo`` (module docstring).
        stage1_epochs: Epochs of stage 1; stage 2 starts at this epoch.
        stage2_epochs: Epochs of stage 2, after which training stops; None: twice
            ``stage1_epochs`` (the authors' ratio). Set the trainer's ``max_epochs`` to at least
            the sum (the configs do).
        stage2_width: A quarter of stage 2's units per hidden layer; None: the recipe's (256,
            the authors' 1024; 64).
        stage2_lr: Adam's learning rate for stage 2; None: the recipe's (1e-4; 1e-3).
        stage1_checkpoint: A Lightning checkpoint (of a ``TwoStageVAE``, or of a ``VAE`` with
            ``likelihood="gaussian_gamma"`` and the same shape) whose stage 1 is loaded at the
            start of ``fit``; stage 1 is then not trained and stage 2 starts at epoch 0.
        gamma_lr: Adam's learning rate for both stages' gamma (see
            :func:`latentzoo.zoo.likelihoods.adam_with_gamma`); None: the recipe's (each
            stage's lr; 1e-2).
        sample_noise: Add stage 2's decoder noise to its codes when sampling; None: the
            recipe's (yes; no).
        width: See :class:`AutoencoderModule` (stage 1's nets).
        lr: Adam's learning rate for stage 1; None: the recipe's (1e-4; 1e-3).
    """

    legacy_hparams: ClassVar[Mapping[str, Any]] = {"recipe": "latentzoo"}
    likelihood: GaussianGamma
    constants: TwoStageRecipe

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        recipe: Recipe = "authors",
        stage1_epochs: int = 10,
        stage2_epochs: int | None = None,
        stage2_width: int | None = None,
        stage2_lr: float | None = None,
        stage1_checkpoint: str | None = None,
        gamma_lr: float | None = None,
        sample_noise: bool | None = None,
        width: int = 32,
        lr: float | None = None,
    ) -> None:
        if recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
        base_lr = RECIPES[recipe]().lr if lr is None else lr
        super().__init__(data_shape, latent_dim, "gaussian_gamma", 0.1, width, base_lr)
        if stage1_epochs == 0 and stage1_checkpoint is None:
            raise ValueError(
                "stage1_epochs=0 would train stage 2 on an untrained stage 1; give "
                "stage1_checkpoint=<a stage-1 checkpoint> or stage1_epochs >= 1"
            )
        stage2_epochs = 2 * stage1_epochs if stage2_epochs is None else stage2_epochs
        if stage2_epochs < 1 or stage1_epochs < 0:
            raise ValueError(
                f"need stage1_epochs >= 0 and stage2_epochs >= 1 (None: 2 x stage1_epochs), got "
                f"{stage1_epochs}, {stage2_epochs}"
            )
        self.stage1_epochs = 0 if stage1_checkpoint is not None else stage1_epochs
        self.stage2_epochs = stage2_epochs
        self.stage1_checkpoint = stage1_checkpoint
        self.recipe = recipe
        self.overrides = {"lr": lr, "stage2_width": stage2_width, "stage2_lr": stage2_lr,
                          "gamma_lr": gamma_lr, "sample_noise": sample_noise}  # fmt: skip
        self.apply_recipe()

    def apply_recipe(self) -> None:
        """Resolve the recipe's constants and build stage 2 (also for an old checkpoint)."""
        self.constants = c = with_overrides(RECIPES[self.recipe](), **self.overrides)
        self.lr, self.stage2_lr = c.lr, c.stage2_lr
        spec = (c.stage2_width, c.stage2_network)
        if self.__dict__.get("stage2_spec") != spec:
            self.stage2 = SecondStageVAE(self.latent_dim, c.stage2_width, c.stage2_lr,
                                         c.gamma_lr or c.stage2_lr, c.stage2_network)  # fmt: skip
            self.stage2_spec = spec

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
        """Stage 2 as a density: codes u = stage-2 decoder mean(z) (+ its noise), z ~ N(0, I)."""
        density = self.__dict__.get("_stage2_density")
        noise = self.constants.sample_noise
        if density is None or density.vae is not self.stage2 or density.noise != noise:
            density = SecondStage.around(self.stage2, noise)
            self.__dict__["_stage2_density"] = density
        return density

    def halving(self, stage: int) -> float:
        """The authors' step decay of stage ``stage``'s rate: 0.5 every ``halve_every`` of its
        epochs."""
        every = self.constants.halve_every
        assert every is not None
        epochs = self.current_epoch - (0 if stage == 1 else self.stage1_epochs)
        return 0.5 ** (max(epochs, 0) // every[stage - 1])

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
        c = self.constants
        halved = c.halve_every is not None
        return [
            Phase(
                "stage1",
                self.stage1_losses,
                self.stage1_modules(),
                self.lr,
                optimizer=partial(adam_with_gamma, gamma_lr=c.gamma_lr or self.lr),
                active=lambda: self.stage == 1,
                lr_factor=partial(self.halving, 1) if halved else None,
            ),
            Phase(
                "stage2",
                self.stage2_losses,
                self.stage2,
                self.stage2_lr,
                optimizer=partial(adam_with_gamma, gamma_lr=c.gamma_lr or self.stage2_lr),
                active=lambda: self.stage == 2,
                lr_factor=partial(self.halving, 2) if halved else None,
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

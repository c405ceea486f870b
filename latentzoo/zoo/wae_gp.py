"""WAE-GP: a Wasserstein auto-encoder whose latent matching is a WGAN-GP critic.

The baseline of the LMGAE paper (Mondal et al., "Towards Latent Space Optimality for Auto-Encoder
Based Generative Models", later "MaskAAE"): :class:`~latentzoo.zoo.LMGAE` with the mask switched
off, under each recipe the same losses, update order, critic, batches and optimizers, so that the
pair isolates the mask. The critic f is trained as in Gulrajani et al. 2017 (Algorithm 1, eq. 3),
and the encoder matched to p(z) as in Tolstikhin et al. 2018 (WAE-GAN):

    L_AE = E_x c(x, D(E(x)))                                                    encoder, decoder
    L_C  = E_x f(E(x)) - E_z f(z) + lambda_gp E_u[(||grad_u f(u)||_2 - 1)^2]    critic, n_critic x
           u = a E(x) + (1 - a) z,  a ~ U[0, 1],  z ~ p(z), the same z in both terms
    L_G  = -E_x f(E(x))                                                         encoder

``-L_C`` without the penalty is the critic's estimate of W1(q(z), p(z)), logged as
``wasserstein``. The recipes (:mod:`latentzoo.zoo.recipes`; sources on docs/models/wae_gp_lmgae.md):

* ``authors`` (MaskAAE_MNIST.py with ``--mask_on 0``): per step the auto-encoder, 5 critic steps,
  then the generator, each on a batch and a prior draw of its own (one step per training batch:
  the loader's batch size is the per-step batch, 64); c the mean over coordinates of
  the binary cross-entropy (``likelihood="bernoulli"``) or squared error (Gaussians);
  TF1's RMSProp at 5e-4 (auto-encoder), 1e-4 (critic), 1e-4 (generator); a 4 x 1024 ReLU critic.
  The auto-encoder's rate drops 5x after LMGAE's step 5 I (see :mod:`latentzoo.zoo.lmgae`).
* ``latentzoo``: latentzoo's LMGAE variant without the mask: auto-encoder, generator, 5 critic
  steps, all on the loader's batch; c the decoder's negative log-likelihood; PyTorch's RMSProp at
  5e-4 for all three, the critic as fast as the auto-encoder (with the authors' 1e-4, at
  m = n = 8 on the synthetic data q(z) entered a limit cycle: the encoder outran the critic,
  Heusel et al. 2017's two time-scale rule); a 2 x ``4 * width`` LeakyReLU critic.

``update="folded"`` trains L_AE + lambda L_G in the auto-encoder's one step, with no generator
phase: Tolstikhin et al.'s Algorithm 2 form with a WGAN-GP critic, neither paper's algorithm (it
is the earlier ``WAEGP``, and what its older checkpoints hold). c's scale then sets
reconstruction against the critic term: ``decoder_sigma`` 0.1 weighed it 50x more than 1.0 and
gave FID 60-79 and holes near 1 on the latent-dim suite, hence the default 1.0 (the separate
updates do not depend on it: RMSProp undoes a loss's scale).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.zoo import nets
from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import LikelihoodName, make_likelihood
from latentzoo.zoo.maskaae_recipes import WAEGP_RECIPES, WAEGPRecipe
from latentzoo.zoo.optimizers import OPTIMIZERS
from latentzoo.zoo.phases import Phase, PhasedAutoencoder
from latentzoo.zoo.recipes import LegacyRecipes, Recipe, with_overrides
from latentzoo.zoo.registry import register_model
from latentzoo.zoo.speed import SpeedSettings

__all__ = ["WAEGP", "gradient_penalty"]


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, eps: Tensor | None = None
) -> Tensor:
    """Gulrajani et al.'s penalty E_u[(||grad_u f(u)||_2 - 1)^2] at u = eps real + (1 - eps) fake.

    Args:
        critic: f, mapping (B, m) to (B, 1) or (B,) with no coupling between samples.
        real: (B, m) samples of one distribution; ``fake``: (B, m) of the other.
        eps: (B, 1) interpolation weights; drawn from U[0, 1] when None (tests pass their own).
    """
    if eps is None:
        eps = torch.rand(len(real), 1, device=real.device, dtype=real.dtype)
    u = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)  # (B, m)
    (grad,) = torch.autograd.grad(critic(u).sum(), u, create_graph=True)  # (B, m)
    return (grad.norm(2, dim=1) - 1).pow(2).mean()


@register_model
class WAEGP(LegacyRecipes, PhasedAutoencoder):
    """Wasserstein auto-encoder with a WGAN-GP latent critic: LMGAE without the mask.

    Args:
        data_shape: See :class:`AutoencoderModule`.
        latent_dim: See :class:`AutoencoderModule`.
        recipe: ``authors`` (MaskAAE's code, mask off) or ``latentzoo`` (see the module
            docstring). The default is LMGAE's, so that ``WAEGP()`` and ``LMGAE()`` are the pair
            that isolates the mask; LMGAE's is the recipe that measured better on the
            ``lmgae-grid`` suite (docs/models/wae_gp_lmgae.md).
        update: ``separate`` (L_G its own phase) or ``folded`` (into L_AE, with ``reg_weight``).
        likelihood: The decoder; c is its NLL (``latentzoo``) or its per-coordinate cost
            (``authors``: ``bernoulli`` gives the authors' cross-entropy, on data in [0, 1]).
        decoder_sigma: Standard deviation of ``gaussian_fixed`` (the ``latentzoo`` NLL's scale).
        reg_weight: lambda, weight of L_G in L_AE with ``update="folded"``.
        gp_weight: lambda_gp of the gradient penalty (10 in Gulrajani et al. and the authors).
        n_critic: Critic steps per batch (5 in both).
        critic_lr: The critic's RMSProp rate; None: the recipe's (1e-4 authors, 5e-4 latentzoo).
        generator_lr: L_G's rate; None: the recipe's (1e-4 authors, ``lr`` latentzoo).
        critic_width: Units of each critic layer; None: the recipe's (1024, ``4 * width``).
        width: See :class:`AutoencoderModule` (encoder and decoder).
        lr: The encoder's and decoder's RMSProp rate (5e-4 in both recipes).
        prior: The critic's target p(z), a fixed :class:`~latentzoo.zoo.densities.LatentDensity`
            (None: N(0, I)); its parameters, if any, are not trained.
    """

    # Measured slower in NHWC on a 2-core CPU (perf/speed.py: 0.72-0.95x; the 4 x 1024 critic
    # dominates the step and gains nothing): the NCHW step, fused kernels where there are.
    speed = SpeedSettings(channels_last=False, optimizer="fused")

    legacy_hparams: ClassVar[Mapping[str, Any]] = {"recipe": "latentzoo", "update": "folded"}
    constants: WAEGPRecipe

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        recipe: Recipe = "latentzoo",
        update: Literal["separate", "folded"] = "separate",
        likelihood: LikelihoodName = "gaussian_fixed",
        decoder_sigma: float = 1.0,
        reg_weight: float = 1.0,
        gp_weight: float = 10.0,
        n_critic: int = 5,
        critic_lr: float | None = None,
        generator_lr: float | None = None,
        critic_width: int | None = None,
        width: int = 32,
        lr: float = 5e-4,
        prior: LatentDensity | None = None,
    ) -> None:
        if recipe not in WAEGP_RECIPES or update not in ("separate", "folded"):
            raise ValueError(
                f"recipe must be one of {sorted(WAEGP_RECIPES)} and update 'separate' or "
                f"'folded', got {recipe!r}, {update!r}"
            )
        super().__init__(data_shape, latent_dim, width, lr, prior)
        if reg_weight < 0 or gp_weight < 0 or n_critic < 1:
            raise ValueError(
                f"need reg_weight >= 0, gp_weight >= 0 and n_critic >= 1, got {reg_weight}, "
                f"{gp_weight}, {n_critic}"
            )
        if any(v is not None and v <= 0 for v in (critic_lr, generator_lr, critic_width)):
            raise ValueError(
                f"critic_lr, generator_lr and critic_width must be > 0 (or None: the recipe's), "
                f"got {critic_lr}, {generator_lr}, {critic_width}"
            )
        self.reg_weight, self.gp_weight, self.n_critic = reg_weight, gp_weight, n_critic
        self.likelihood = make_likelihood(likelihood, decoder_sigma)
        self.encoder = self.build_encoder(latent_dim)
        self.decoder = self.build_decoder(self.likelihood.out_channels)
        self.recipe, self.update = recipe, update
        self.overrides = {"critic_lr": critic_lr, "generator_lr": generator_lr,
                          "critic_width": critic_width}  # fmt: skip
        self.apply_recipe()

    # -- the recipe -------------------------------------------------------------------------------
    def recipe_table(self) -> WAEGPRecipe:
        """The constants of ``self.recipe`` for this model, before the overrides."""
        return WAEGP_RECIPES[self.recipe](self.latent_dim)

    def apply_recipe(self) -> None:
        """Resolve the constants of ``recipe`` and ``overrides`` and build what depends on them
        (the critic); also called when an old checkpoint is loaded."""
        self.constants = c = with_overrides(self.recipe_table(), **self.overrides)
        self.fresh_batches = c.fresh_batches
        spec = (c.critic_width or 4 * self.width, c.critic_depth, c.critic_activation)
        if self.__dict__.get("critic_spec") != (*spec, c.critic_glorot):
            self.critic = self.build_critic()
            self.critic_spec = (*spec, c.critic_glorot)

    def build_critic(self) -> nn.Module:
        """f: (B, latent_dim) -> (B, 1); no batch norm, which would void the per-sample penalty."""
        c = self.constants
        hidden = c.critic_width or 4 * self.width
        critic = nets.mlp(self.latent_dim, 1, hidden, c.critic_depth, 0.2, c.critic_activation)
        return nets.glorot_(critic) if c.critic_glorot else critic

    def steps_trained(self) -> int:
        """The recipe's steps trained so far, for its schedules: batches, or with the authors'
        recipe cycles of one step per phase step (7 batches; 8 for LMGAE)."""
        return self.cycles_done()

    def lr_drop_factor(self) -> float:
        """1 until ``lr_drop_after`` steps are trained, then ``lr_drop``."""
        after = self.constants.lr_drop_after
        return self.constants.lr_drop if after is not None and self.steps_trained() > after else 1

    # -- the latent code as the decoder and the critic see it ------------------------------------
    def gate(self, z: Tensor) -> Tensor:
        """What the decoder and the critic see of a code z (B, m); the identity here."""
        return z

    @override
    def decode(self, z: Tensor) -> Tensor:
        return self.likelihood.mean(self.decoder(self.gate(z)))

    def score(self, z: Tensor) -> Tensor:
        """The critic's score f(gate(z)) of each code, (B,)."""
        return self.critic(self.gate(z)).squeeze(-1)

    # -- loss terms -------------------------------------------------------------------------------
    def reconstruction(self, x: Tensor, out: Tensor) -> Tensor:
        """Batch mean of c(x, decoder output ``out``): the recipe's cost or NLL."""
        if self.constants.reconstruction == "cost":
            return self.likelihood.cost(x, out).mean()
        return self.likelihood.nll(x, out).mean()

    def wasserstein(self, z: Tensor, prior: Tensor | None = None) -> Tensor:
        """The critic's estimate E_p f(z') - E_q f(z) of W(p, q) for encodings z (B, m).

        z' (``prior``) comes from the prior itself (``sample_prior``) unless given, never from
        an attached sampler: a GMM fitted to q would make the regularizer match q to itself.
        """
        prior = self.sample_prior(len(z)) if prior is None else prior
        return self.score(prior).mean() - self.score(z).mean()

    def regularizers(self, z: Tensor, out: Tensor) -> dict[str, Tensor]:
        """Terms added to L_AE, given the codes and the decoder's output; none here."""
        return {}

    def autoencoder_loss(self, x: Tensor) -> dict[str, Tensor]:
        """L_AE = reconstruction (+ regularizers; + lambda L_G when folded)."""
        z = self.encode(x)  # (B, m)
        out = self.decoder(self.gate(z))
        recon = self.reconstruction(x, out)
        terms = {"recon": recon, **self.regularizers(z, out)}
        loss = recon
        for term in list(terms.values())[1:]:
            loss = loss + term
        if self.update == "folded":
            terms["generator"] = -self.score(z).mean()
            loss = loss + self.reg_weight * terms["generator"]
        return {"loss": loss, **terms}

    def generator_loss(self, x: Tensor) -> dict[str, Tensor]:
        """L_G = -E f(gate(E(x)))."""
        generator = -self.score(self.encode(x)).mean()
        return {"loss": generator, "generator": generator}

    def critic_loss(
        self, x: Tensor, prior: Tensor | None = None, eps: Tensor | None = None
    ) -> dict[str, Tensor]:
        """L_C = -W + lambda_gp GP: one prior draw (drawn unless given) for both terms."""
        with torch.no_grad():
            z = self.encode(x)  # (B, m)
            prior = self.sample_prior(len(z)) if prior is None else prior
        w = self.wasserstein(z, prior)
        gp = gradient_penalty(self.critic, self.gate(z), self.gate(prior), eps)
        return {"loss": -w + self.gp_weight * gp, "wasserstein": w, "gp": gp}

    def compute_losses(self, x: Tensor) -> dict[str, Tensor]:
        """L_AE's terms and the critic's W estimate (no penalty: it needs grad)."""
        losses = self.autoencoder_loss(x)
        losses["wasserstein"] = self.wasserstein(self.encode(x))
        return losses

    # -- optimization -----------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """Auto-encoder, critic and generator in the recipe's order (no generator if folded)."""
        c, optimizer = self.constants, OPTIMIZERS[self.constants.optimizer]
        # The likelihood's own parameters (gaussian_gamma's variance) train with the decoder.
        ae_params = [*self.encoder.parameters(), *self.decoder.parameters(),
                     *self.likelihood.parameters()]  # fmt: skip
        drop = self.lr_drop_factor if c.lr_drop_after is not None else None
        autoencoder = Phase("autoencoder", self.autoencoder_loss, ae_params, self.lr,
                            optimizer=optimizer, lr_factor=drop)  # fmt: skip
        critic = Phase("critic", self.critic_loss, self.critic.parameters(), c.critic_lr,
                       self.n_critic, optimizer=optimizer)  # fmt: skip
        if self.update == "folded":
            return [autoencoder, critic]
        generator = Phase("generator", self.generator_loss, self.encoder.parameters(),
                          c.generator_lr or self.lr, optimizer=optimizer)  # fmt: skip
        return [autoencoder, generator, critic] if c.generator_first else [
            autoencoder, critic, generator]  # fmt: skip

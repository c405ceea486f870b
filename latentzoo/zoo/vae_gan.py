"""VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric").

A VAE whose reconstruction error is measured in a hidden layer Dis_l of a GAN discriminator
instead of in pixels (sec. 2.2, eq. (6)-(7)):

    L_llike = -E_q[log N(Dis_l(x) | Dis_l(x~), I)] = 1/2 ||Dis_l(x) - Dis_l(x~)||^2 + const,
    L_prior = KL(q(z|x) || p(z))      (p = N(0, I) unless ``prior`` is given),
    L_GAN   = log Dis(x) + log(1 - Dis(x~)) + log(1 - Dis(x_p)),      (eq. (9) terms)

with x~ = Dec(z), z ~ q(z|x) the reconstruction, and x_p = Dec(z_p), z_p ~ p(z) a prior sample
(held fixed within a batch: a learned prior learns from L_prior alone, in the encoder's update).
Algorithm 1 updates each network on its own objective, all at the same parameters:

    theta_Enc <- -grad (L_prior + L_llike)
    theta_Dec <- -grad (w L_llike + (1 - w) GAN term),   w = gamma / (1 + gamma)
    theta_Dis <- -grad (its GAN loss)

The recipes (:mod:`latentzoo.zoo.vae_gan_recipes`) differ in the GAN terms and around them:

* ``authors`` (the authors' code): fakes are the prior samples only, 0.5 : 0.5 against the reals,
  logs of (p + 1e-3); the decoder's term is the *saturating* log(1 - Dis(x_p)), obtained there by
  negating the discriminator's gradient; w = 1e-6 (1e-5 for 32x32, CIFAR's); Dis_l is the last
  convolution's output before its batch norm (the 4th conv of their 64x64 nets), run on its own
  batch [x~; x]; Larsen et al.'s equilibrium gating: the discriminator skips its step when a
  cost -log(Dis(x)) or -log(1 - Dis(x_p)) falls below 0.68 - 0.35, the decoder when one rises
  above 0.68 + 0.35 (both step if both would skip); deeppy's RMSProp (decay 0.9) with weight
  decay 1e-5, lr 0.025 / 64 annealed to 1e-5 / 64 as 1 - (epoch / epochs)^0.75.
* ``latentzoo`` (latentzoo's earlier default): fakes x~ and x_p, 1 : 1 : 1, exact BCE;
  the non-saturating -log Dis(.); gamma 1e-2; Dis_l the last hidden layer after its batch norm
  and LeakyReLU, in one batch [x; x~; x_p] with the GAN term; no gating; PyTorch's RMSProp at
  3e-4 constant.

The three updates are phases of the engine in :mod:`latentzoo.zoo.phases` with ``simultaneous =
True``: each gradient comes from its own forward pass with only that network's parameters
requiring grad (``toggled_optimizer``), then the steps the gating allows; with the noise (eps of
z ~ q(z|x), and z_p) drawn once per batch in ``begin_batch``, the three passes compute the same
terms as one would. One batch is one ``global_step``. (One graph with three
``backward(inputs=...)`` calls would cost one forward, but DDP cannot reduce gradients of a
backward restricted to part of the parameters.) Batch-norm running statistics see the batch three
times per step.

A discriminator that wins outright (its loss near 0) gives the decoder no usable gradient and the
samples turn to noise; :class:`VAEGAN` counts the consecutive steps with discriminator loss below
``dis_win_loss``, logs ``train/dis_collapsed`` = 1 once the count reaches ``dis_win_steps`` and
warns once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.zoo import nets
from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import LikelihoodName
from latentzoo.zoo.optimizers import OPTIMIZERS
from latentzoo.zoo.phases import Phase, PhasedAutoencoder
from latentzoo.zoo.recipes import LegacyRecipes, Recipe, with_overrides
from latentzoo.zoo.registry import register_model
from latentzoo.zoo.vae import VAE, reparameterize
from latentzoo.zoo.vae_gan_recipes import (
    VAEGAN_RECIPES,
    SplitDiscriminator,
    VAEGANRecipe,
    equilibrium_gate,
)

__all__ = ["VAEGAN"]


@register_model
class VAEGAN(LegacyRecipes, VAE, PhasedAutoencoder):
    """VAE with a discriminator-feature reconstruction loss and GAN terms.

    The decoder's output is squashed by a sigmoid for images (data in [0, 1]) and left as is for
    flat vectors; there is no pixel likelihood, the one reconstruction term is L_llike.

    Args:
        data_shape: See :class:`AutoencoderModule`.
        latent_dim: See :class:`AutoencoderModule`.
        recipe: ``authors`` or ``latentzoo`` (module docstring); the ``paper-recipes`` suite
            measures which to make the default.
        gamma: Weight of L_llike against the GAN term in the decoder's update; None: the
            recipe's (the authors' w / (1 - w) = 1e-6, or 1e-5 for 32x32; 1e-2).
        gan_margin: Margin of the equilibrium gating; None: the recipe's (0.35; off).
        dis_win_loss: Discriminator loss below which it counts as winning.
        dis_win_steps: Consecutive winning steps after which ``train/dis_collapsed`` turns 1.
        width: See :class:`AutoencoderModule`; the discriminator has the encoder's shape.
        lr: RMSProp's learning rate for all three networks; None: the recipe's (0.025 / 64
            annealed; 3e-4).
        prior: See :class:`~latentzoo.zoo.VAE`; trained in the encoder's update.
    """

    legacy_hparams: ClassVar[Mapping[str, Any]] = {"recipe": "latentzoo"}
    constants: VAEGANRecipe
    dis_win_streak: Tensor  # consecutive steps the discriminator has won, a long scalar
    simultaneous = True  # Algorithm 1: every gradient at the same parameters, then the steps

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        recipe: Recipe = "authors",
        gamma: float | None = None,
        gan_margin: float | None = None,
        dis_win_loss: float = 1e-3,
        dis_win_steps: int = 200,
        width: int = 32,
        lr: float | None = None,
        prior: LatentDensity | None = None,
    ) -> None:
        if recipe not in VAEGAN_RECIPES:
            raise ValueError(f"recipe must be one of {sorted(VAEGAN_RECIPES)}, got {recipe!r}")
        output: LikelihoodName = "bernoulli" if len(data_shape) == 3 else "gaussian_fixed"
        base_lr = VAEGAN_RECIPES[recipe](data_shape).lr if lr is None else lr
        super().__init__(data_shape, latent_dim, output, 1.0, width, base_lr, prior)
        if (gamma or 0) < 0 or (gan_margin or 0) < 0 or dis_win_loss <= 0 or dis_win_steps < 1:
            raise ValueError(
                f"need gamma >= 0, gan_margin >= 0, dis_win_loss > 0 and dis_win_steps >= 1, got "
                f"{gamma}, {gan_margin}, {dis_win_loss}, {dis_win_steps}"
            )
        self.dis_win_loss = dis_win_loss
        self.dis_win_steps = dis_win_steps
        self.discriminator = self.build_encoder(1)
        self.register_buffer("dis_win_streak", torch.zeros((), dtype=torch.long))
        self._warned_collapse = False
        self._noise: tuple[Tensor, Tensor] | None = None  # this batch's, from begin_batch
        self.recipe = recipe
        self.overrides = {"gamma": gamma, "gan_margin": gan_margin, "lr": lr}
        self.apply_recipe()

    def apply_recipe(self) -> None:
        """Resolve the constants of ``recipe`` and ``overrides``; no shape depends on them."""
        self.constants = with_overrides(VAEGAN_RECIPES[self.recipe](self.data_shape),
                                        **self.overrides)  # fmt: skip
        self.gamma, self.lr = self.constants.gamma, self.constants.lr

    def split_discriminator(self) -> SplitDiscriminator:
        """The discriminator cut at the recipe's Dis_l: after the last convolution (or, for flat
        data, the last hidden linear layer) before its normalisation and activation
        (``last_conv``), or after the whole trunk (``last_hidden``)."""
        d = self.discriminator
        head: nn.Module
        if isinstance(d, nets.ConvEncoder):
            layers, head = list(d.features), d.head
        else:  # the MLP of flat data: everything but the last linear layer is the trunk
            assert isinstance(d, nn.Sequential)
            layers, head = list(d)[:-1], d[-1]
        cut = len(layers)
        if self.constants.similarity == "last_conv":
            kinds = (nn.Conv2d, nn.Linear)
            cut = max(i for i, m in enumerate(layers) if isinstance(m, kinds)) + 1
        return SplitDiscriminator(nn.Sequential(*layers[:cut]), nn.Sequential(*layers[cut:], head))

    def draw_noise(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """eps of the reparameterisation and the prior draws z_p for a batch, each (B, latent_dim).

        The GAN term uses draws of the model's prior (not an attached latent sampler), detached:
        the three passes of a batch share them.
        """
        eps = torch.randn(len(x), self.latent_dim, device=x.device)
        return eps, self.sample_prior(len(x)).detach()

    def terms(self, x: Tensor, noise: tuple[Tensor, Tensor] | None = None) -> dict[str, Tensor]:
        """Every term of Algorithm 1 from one forward pass, averaged over the batch.

        Args:
            x: The batch.
            noise: ``(eps, z_p)`` from :meth:`draw_noise`; drawn here when None.
        """
        eps, z_p = self.draw_noise(x) if noise is None else noise
        mu, logvar = self.posterior(x)
        z = reparameterize(mu, logvar, eps)  # (B, latent_dim)
        x_rec, x_p = self.decode(z), self.decode(z_p)
        kl = self.prior.kl(mu, logvar, z).mean()
        gan = self.constants.gan_terms(self.split_discriminator(), x, x_rec, x_p)
        w = self.gamma / (1 + self.gamma)
        return {
            "kl": kl,
            **gan,
            "recon": (x_rec - x).pow(2).flatten(1).sum(1).mean(),  # pixels, monitored only
            "enc": kl + gan["llike"],
            "dec": w * gan["llike"] + (1 - w) * gan["gen"],
            "objective": kl + gan["llike"] + gan["gen"],  # eq. (9), generator's side: train/loss
        }

    @override
    def compute_losses(self, x: Tensor) -> dict[str, Tensor]:
        """``loss`` = L_prior + L_llike + generator term (eq. (9) from the generator's side)."""
        t = self.terms(x)
        return {"loss": t["objective"], **{k: t[k] for k in _LOGGED if k != "objective"}}

    def parameter_groups(self) -> tuple[list[nn.Parameter], ...]:
        """Encoder (with the prior, if it has parameters), decoder (with the likelihood, if it has
        parameters) and discriminator."""
        enc = [*self.encoder.parameters(), *self.prior.parameters()]
        dec = [*self.decoder.parameters(), *self.likelihood.parameters()]
        return enc, dec, list(self.discriminator.parameters())

    # -- training: Algorithm 1 as three simultaneous phases ------------------------------------
    @override
    def begin_batch(self, x: Tensor) -> None:
        self._noise = self.draw_noise(x)  # once per batch: the three passes share it

    def _objective(
        self, key: str, monitored: bool = False
    ) -> Callable[[Tensor], dict[str, Tensor]]:
        """A phase loss: the objective ``key`` of :meth:`terms` as ``"loss"``; with
        ``monitored``, also the terms to log and to gate on (all phases see the same
        parameters and noise)."""

        def loss(x: Tensor) -> dict[str, Tensor]:
            t = self.terms(x, self._noise)
            return {"loss": t[key], **({k: t[k] for k in _LOGGED} if monitored else {})}

        return loss

    def gates(self, terms: Mapping[str, Tensor]) -> tuple[bool, bool]:
        """(discriminator steps, decoder steps) on this batch's costs (equilibrium gating)."""
        margin = self.constants.gan_margin
        if margin is None:
            return True, True
        return equilibrium_gate(float(terms["real_cost"]), float(terms["fake_cost"]), margin)

    def anneal_factor(self) -> float:
        """The recipe's learning-rate annealing at this epoch (1 without a trainer's budget)."""
        end = self.constants.anneal_to
        try:
            total = self.trainer.max_epochs
        except RuntimeError:  # not attached to a trainer
            total = None
        if end is None or total is None or total < 1:
            return 1.0
        return 1 - min(1.0, self.current_epoch / total) ** 0.75 * (1 - end)

    @override
    def phases(self) -> list[Phase]:
        enc, dec, dis = self.parameter_groups()
        c = self.constants
        optimizer = OPTIMIZERS[c.optimizer]
        if c.weight_decay:
            optimizer = partial(optimizer, weight_decay=c.weight_decay)
        anneal = self.anneal_factor if c.anneal_to is not None else None
        gated = c.gan_margin is not None
        return [
            Phase("encoder", self._objective("enc", True), enc, self.lr, optimizer=optimizer,
                  headline="objective", lr_factor=anneal),
            Phase("decoder", self._objective("dec"), dec, self.lr, optimizer=optimizer,
                  lr_factor=anneal, step_if=(lambda t: self.gates(t)[1]) if gated else None),
            Phase("discriminator", self._objective("dis"), dis, self.lr, optimizer=optimizer,
                  lr_factor=anneal, step_if=(lambda t: self.gates(t)[0]) if gated else None),
        ]  # fmt: skip

    @override
    def end_batch(self, terms: dict[str, Tensor], logged: bool) -> None:
        self._noise = None
        if logged and self.constants.gan_margin is not None:
            dis, dec = self.gates(terms)
            self.log_dict({"train/dis_update": float(dis), "train/dec_update": float(dec)})
        self._watch_discriminator(terms["dis"], logged)

    def _watch_discriminator(self, dis: Tensor, logged: bool) -> None:
        won = dis < self.dis_win_loss
        self.dis_win_streak.copy_(torch.where(won, self.dis_win_streak + 1, 0))
        collapsed = (self.dis_win_streak >= self.dis_win_steps).float()
        if logged:
            self.log("train/dis_win_streak", self.dis_win_streak.float())
        self.log("train/dis_collapsed", collapsed, prog_bar=True)
        # Reading the flag costs a device sync, so only as often as the logger writes.
        if not self._warned_collapse and logged and bool(collapsed):
            self._warned_collapse = True
            rank_zero_warn(
                f"VAEGAN's discriminator loss has stayed below {self.dis_win_loss} for "
                f"{self.dis_win_steps} steps: it wins outright and the decoder gets no gradient "
                f"from it. Lower lr, raise gamma, or shrink the discriminator's width."
            )


_LOGGED = ("kl", "llike", "gen", "dis", "recon", "real_cost", "fake_cost", "objective")

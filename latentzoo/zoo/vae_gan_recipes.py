"""The recipes of the VAE-GAN side by side: Larsen et al.'s code and latentzoo's variant.

``authors``: andersbll/autoencoding_beyond_pixels @ 24aa0f2 (``model/aegan.py``, cited AG:line;
``aegan.py``, TR:line) on deeppy @ 8cb658b. ``latentzoo``: the VAE-GAN latentzoo had before
the authors' recipe (Algorithm 1 as commonly transcribed, non-saturating). Each GAN-terms
function is a direct transcription of one code's losses, given the discriminator split at its
similarity layer Dis_l (:class:`SplitDiscriminator`); :class:`~latentzoo.zoo.VAEGAN` reads the
table. docs/models/vae_gan_two_stage_samplers.md lists every departure with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentzoo.zoo.optimizers import OptimizerName

__all__ = [
    "EQUILIBRIUM",
    "VAEGAN_RECIPES",
    "SplitDiscriminator",
    "VAEGANRecipe",
    "authors_gan_terms",
    "equilibrium_gate",
    "latentzoo_gan_terms",
]

EQUILIBRIUM = 0.68  # ~ -log(0.5): the cost of a discriminator that cannot tell (AG:163-205)
LOG_EPS = 1e-3  # inside the authors' logs (AG:15)


class SplitDiscriminator(NamedTuple):
    """The discriminator cut at its similarity layer: ``trunk`` maps x to Dis_l(x), ``rest``
    maps Dis_l(x) to the logit of Dis(x). Both reuse the discriminator's modules."""

    trunk: nn.Module
    rest: nn.Module

    def similarity(self, x: Tensor) -> Tensor:
        return self.trunk(x).flatten(1)  # (B, F)

    def logits(self, x: Tensor) -> Tensor:
        return self.rest(self.trunk(x)).squeeze(-1)  # (B,)


def authors_gan_terms(
    dis: SplitDiscriminator, x: Tensor, x_rec: Tensor, x_p: Tensor
) -> dict[str, Tensor]:
    """Larsen et al.'s code (AG:57-119), batch means for their batch sums (their lr / batch).

    Dis_l runs on its own batch [x~; x] (AG:67-72), Dis on [x; x_p]: the fakes are the prior
    samples only (``discriminate_ae_recon=False`` in every published script), weighted 0.5 : 0.5
    against the reals; the decoder descends the *saturating* log(1 - Dis(x_p) + e), the negated
    gradient of the discriminator's fake term with its weight undone (AG:29-34, 103-110).
    """
    f_rec, f_x = dis.similarity(torch.cat([x_rec, x])).chunk(2)
    d_x, d_p = torch.sigmoid(dis.logits(torch.cat([x, x_p]))).chunk(2)
    real_cost = -(d_x + LOG_EPS).log().mean()
    fake_cost = -(1 - d_p + LOG_EPS).log().mean()
    return {
        "llike": 0.5 * (f_x - f_rec).pow(2).sum(1).mean(),
        "gen": -fake_cost,
        "dis": 0.5 * real_cost + 0.5 * fake_cost,
        "real_cost": real_cost,
        "fake_cost": fake_cost,
    }


def latentzoo_gan_terms(
    dis: SplitDiscriminator, x: Tensor, x_rec: Tensor, x_p: Tensor
) -> dict[str, Tensor]:
    """latentzoo's variant: one batch-norm batch [x; x~; x_p]; both x~ and x_p are fakes,
    1 : 1 : 1 against the reals; the decoder's term is the non-saturating -log Dis(.)."""
    h = dis.trunk(torch.cat([x, x_rec, x_p]))
    f_x, f_rec, _ = h.flatten(1).chunk(3)
    l_x, l_rec, l_p = dis.rest(h).squeeze(-1).chunk(3)
    real_cost = _bce(l_x, 1.0)
    fake_cost = _bce(l_rec, 0.0) + _bce(l_p, 0.0)
    return {
        "llike": 0.5 * (f_x - f_rec).pow(2).sum(1).mean(),
        "gen": _bce(l_rec, 1.0) + _bce(l_p, 1.0),
        "dis": real_cost + fake_cost,
        "real_cost": real_cost,
        "fake_cost": fake_cost / 2,
    }


def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def equilibrium_gate(
    real_cost: float, fake_cost: float, margin: float, equilibrium: float = EQUILIBRIUM
) -> tuple[bool, bool]:
    """(discriminator steps, decoder steps) under Larsen et al.'s gating (AG:163-205): freeze the
    discriminator when it is too good (a cost below equilibrium - margin), the decoder when the
    discriminator is losing (a cost above equilibrium + margin); both step if both would freeze."""
    dis = not (real_cost < equilibrium - margin or fake_cost < equilibrium - margin)
    dec = not (real_cost > equilibrium + margin or fake_cost > equilibrium + margin)
    return (True, True) if not (dis or dec) else (dis, dec)


@dataclass(frozen=True)
class VAEGANRecipe:
    """What a recipe sets; an argument left at None takes the value here."""

    gamma: float  # decoder: w L_llike + (1 - w) GAN term, w = gamma / (1 + gamma)
    gan_terms: Callable[[SplitDiscriminator, Tensor, Tensor, Tensor], dict[str, Tensor]]
    similarity: Literal["last_conv", "last_hidden"]  # Dis_l: before its norm, or after
    gan_margin: float | None  # equilibrium gating; None: every network steps every batch
    optimizer: OptimizerName
    weight_decay: float  # on linear and convolution weights
    lr: float
    anneal_to: float | None  # lr x this at the last epoch, reached as 1 - (e / E)^0.75


def vaegan_authors(data_shape: Sequence[int]) -> VAEGANRecipe:
    w = 1e-5 if data_shape[-1] == 32 else 1e-6  # recon_vs_gan_weight: CIFAR / 64x64 scripts
    return VAEGANRecipe(
        gamma=w / (1 - w),
        gan_terms=authors_gan_terms,
        similarity="last_conv",  # recon_depth 9 of img64x64: the 4th (last) conv, pre-BN
        gan_margin=0.35,  # train(gan_margin=0.35) (TR:61-62)
        optimizer="deeppy_rmsprop",
        weight_decay=1e-5,  # wdecay (TR:16)
        lr=0.025 / 64,  # lr_start 0.025 of the CelebA and CIFAR scripts, / batch size (TR:85)
        anneal_to=1e-5 / 0.025,  # GammaAnnealer(lr_start, 1e-5, n_epochs, gamma=0.75)
    )


def vaegan_latentzoo(data_shape: Sequence[int]) -> VAEGANRecipe:
    return VAEGANRecipe(
        gamma=1e-2,
        gan_terms=latentzoo_gan_terms,
        similarity="last_hidden",
        gan_margin=None,
        optimizer="rmsprop",
        weight_decay=0.0,
        lr=3e-4,
        anneal_to=None,
    )


VAEGAN_RECIPES: dict[str, Callable[[Sequence[int]], VAEGANRecipe]] = {
    "authors": vaegan_authors,
    "latentzoo": vaegan_latentzoo,
}

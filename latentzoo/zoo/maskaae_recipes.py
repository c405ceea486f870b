"""The recipes of WAE-GP and LMGAE side by side: one table of constants per recipe.

``authors``: MaskAAE_MNIST.py (arnabkmondal/MaskAAE @ e508d96, cited MA:line), the LMGAE paper's
code, with ``--mask_on 0`` for WAE-GP. ``latentzoo``: latentzoo's variant, tuned on CPU runs.
Each is a function of the latent dimension M (the authors' schedules are). The models read these
tables (:mod:`latentzoo.zoo.wae_gp`, :mod:`latentzoo.zoo.lmgae`); an argument left at None takes
the value here. docs/models/wae_gp_lmgae.md lists every departure with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from latentzoo.zoo.nets import Activation
from latentzoo.zoo.optimizers import OptimizerName
from latentzoo.zoo.recipes import Recipe

__all__ = [
    "LMGAE_RECIPES",
    "WAEGP_RECIPES",
    "LMGAERecipe",
    "Recipe",
    "WAEGPRecipe",
    "authors_interval",
    "exp_weighted_variance",
    "open_weighted_variance",
]


def authors_interval(latent_dim: int) -> int:
    """I, MaskAAE's schedule interval (MaskAAE_MNIST.py:323): 75 for M <= 20, else
    min(10000, floor(1125 M / 10))."""
    return 75 if latent_dim <= 20 else min(10000, 1125 * latent_dim // 10)


@dataclass(frozen=True)
class WAEGPRecipe:
    """What a recipe sets; an argument left at None takes the value here."""

    critic_lr: float
    generator_lr: float | None  # None: lr
    critic_width: int | None  # units of each hidden layer; None: 4 * width
    critic_depth: int
    critic_activation: Activation
    critic_glorot: bool  # TF1 Keras initialisation (nets.glorot_)
    optimizer: OptimizerName
    generator_first: bool  # L_G before the critic steps, or after them
    fresh_batches: bool  # one optimizer step per training batch, each on a batch of its own
    reconstruction: Literal["cost", "nll"]  # likelihood.cost or likelihood.nll
    lr_drop_after: int | None  # steps after which lr (and LMGAE's mask_lr) x lr_drop
    lr_drop: float


def authors_recipe(latent_dim: int) -> WAEGPRecipe:
    """MaskAAE_MNIST.py (arnabkmondal/MaskAAE @ e508d96, cited MA:line)."""
    return WAEGPRecipe(  # the auto-encoder's rate 5e-4 is 5 x the script's lr 1e-4 (MA:304-305)
        critic_lr=1e-4,  # MA:308-309
        generator_lr=1e-4,  # MA:306-307
        critic_width=1024,  # 4 x Dense(1024, ReLU) (MA:169-182)
        critic_depth=4,
        critic_activation="relu",
        critic_glorot=True,  # glorot-normal kernels (MA:127)
        optimizer="tf1_rmsprop",  # tf.train.RMSPropOptimizer
        generator_first=False,  # AE, critic x 5, generator (MA:346-372)
        fresh_batches=True,  # np.random.randint batches and z for every step (MA:347-386)
        reconstruction="cost",  # per-pixel mean BCE (MA:247-248)
        # The script multiplies the AE (and mask) *loss* by 1/5 after step 5 I (MA:388-390),
        # which RMSProp undoes within ~50 steps; the learning rate is dropped instead.
        lr_drop_after=5 * authors_interval(latent_dim),
        lr_drop=0.2,
    )


def latentzoo_recipe(latent_dim: int) -> WAEGPRecipe:
    """latentzoo's LMGAE variant, mask off."""
    return WAEGPRecipe(
        critic_lr=5e-4,  # as fast as the auto-encoder: see the module docstring
        generator_lr=None,
        critic_width=None,
        critic_depth=2,
        critic_activation="leaky_relu",
        critic_glorot=False,
        optimizer="rmsprop",
        generator_first=True,
        fresh_batches=False,
        reconstruction="nll",
        lr_drop_after=None,
        lr_drop=1.0,
    )


WAEGP_RECIPES: dict[str, Callable[[int], WAEGPRecipe]] = {
    "authors": authors_recipe,
    "latentzoo": latentzoo_recipe,
}


def exp_weighted_variance(z: Tensor, m: Tensor) -> Tensor:
    """mean_{b,j} (mean_b z_bj - z_bj)^2 exp(-10 m_j^2): the authors' V (MA:256-258)."""
    return ((z.mean(0) - z).pow(2) * torch.exp(-10 * m.pow(2))).mean()


def open_weighted_variance(z: Tensor, m: Tensor) -> Tensor:
    """sum_j (1 - m_j) Var_batch[z_j] (unbiased): latentzoo's V."""
    return ((1 - m) * z.var(0)).sum()


@dataclass(frozen=True)
class LMGAERecipe(WAEGPRecipe):
    """WAE-GP's constants and the mask's; an argument left at None takes the value here."""

    mask_lr: float
    mask_init: float | None  # every m_j at the start; None: v ~ U[0, 5]
    var_weight: float  # lambda_v
    variance_penalty: Callable[[Tensor, Tensor], Tensor]  # V(codes, mask)
    var_precision: bool  # V weighted by the likelihood's precision
    mask_ae_weight: float  # beta
    mask_reconstruction: Literal["reconstruction", "squared_error"]  # R_M
    critic_term: Callable[[Tensor], Tensor]  # C(W)
    open_cost: float  # gamma
    binarize_doubling_steps: int
    binarize_stepwise: bool  # c_t doubles at multiples, or continuously


def lmgae_authors(latent_dim: int) -> LMGAERecipe:
    """WAE-GP's authors' constants and MaskAAE's mask (MA:189-192, 256-266, 318-323, 343)."""
    return LMGAERecipe(
        **vars(authors_recipe(latent_dim)),
        mask_lr=5e-4,  # 5 x lr (MA:291-292)
        mask_init=None,
        var_weight=100.0,  # MA:576
        variance_penalty=exp_weighted_variance,
        var_precision=False,
        mask_ae_weight=1000.0,
        mask_reconstruction="reconstruction",
        critic_term=lambda w: (1 + w).pow(2),
        open_cost=0.0,
        binarize_doubling_steps=4 * authors_interval(latent_dim),
        binarize_stepwise=True,
    )


def lmgae_latentzoo(latent_dim: int) -> LMGAERecipe:
    """WAE-GP's latentzoo constants and latentzoo's mask (see :mod:`latentzoo.zoo.lmgae`)."""
    return LMGAERecipe(
        **vars(latentzoo_recipe(latent_dim)),
        mask_lr=1e-2,
        mask_init=0.5,
        var_weight=1.0,
        variance_penalty=open_weighted_variance,
        var_precision=True,
        mask_ae_weight=3.0,
        mask_reconstruction="squared_error",
        critic_term=lambda w: w,
        open_cost=1.0,
        binarize_doubling_steps=500,
        binarize_stepwise=False,
    )


LMGAE_RECIPES: dict[str, Callable[[int], LMGAERecipe]] = {
    "authors": lmgae_authors,
    "latentzoo": lmgae_latentzoo,
}

"""LMGAE: a WAE-GP that learns which latent dimensions to switch off.

Mondal et al., "Towards Latent Space Optimality for Auto-Encoder Based Generative Models" (later
"MaskAAE"), sec. 4. A mask m = 1 - exp(-v) in [0, 1]^M, v >= 0 (projected after every mask step),
multiplies both the encodings and the prior samples before the decoder D and the critic f; on
every step four losses are minimized, each by its own optimizer, in the recipe's order
(:class:`~latentzoo.zoo.WAEGP`'s phases, then the mask's):

    L_AE = R + lambda_v V                                           encoder, decoder
    L_C  = E f(m E(x)) - E f(m z) + lambda_gp GP                     critic (n_critic steps)
    L_G  = -E f(m E(x))                                              encoder
    L_M  = beta R_M + C(W) + c_t sum_j |m_j (1 - m_j)| + gamma_t sum_j m_j     mask v

with W = E f(m z) - E f(m E(x)) the critic's Wasserstein estimate. V makes the encoder stop using
the dimensions the mask closes; W closes those the encodings cannot fill like N(0, 1), R_M keeps
open those the decoder needs; c_t snaps m to {0, 1}. A dimension is active when m_j >= 0.1
max_k m_k: the count is blind to a common scale of m, which the decoder's first layer (linear in
the masked code) absorbs (see :attr:`LMGAE.active_dims`).

``recipe="authors"``: MaskAAE_MNIST.py (arnabkmondal/MaskAAE @ e508d96, cited MA:line):

* R the per-coordinate mean cost (:meth:`WAEGP.reconstruction`); V = mean over batch and
  coordinates of (mean_b e_bj - e_bj)^2 exp(-10 m_j^2), lambda_v = 100 (MA:256-259);
* R_M = R with beta = 1000, C(W) = (1 - (E f(m e) - E f(m z)))^2 = (1 + W)^2, gamma = 0
  (MA:263-266); v ~ U[0, 5] at the start (MA:318-320); mask RMSProp rate 5e-4;
* c_t = (2 / M) 2^floor(t / 4I), capped at 2048, t the steps trained (each step a cycle of 8
  training batches: one per phase step, each on a batch of its own), I = 75 for M <= 20 else
  min(10000, floor(1125 M / 10)) (MA:323, 343, 377-378); for M > 20, c_t stays 2 / M for the
  first 4 I = 10,800+ steps, longer than CPU-sized runs;
* the auto-encoder's and the mask's learning rates x 1/5 after step 5 I. The authors multiply
  those two *losses* by 1/5 (MA:388-390), which RMSProp undoes within ~50 steps (0.21x the step
  right after, 0.95x 50 steps later); the intended lasting drop is implemented instead.

``recipe="latentzoo"``, latentzoo's own variant, tuned on CPU-sized runs (tens of epochs):

* R the decoder's NLL and V = sum_j (1 - m_j) Var_batch[e_j], lambda_v = 1, weighted by the
  likelihood's precision 1 / Var[x | z]; R_M = ||x - D(m e)||^2 / 2, beta = 3, C(W) = W: L_AE is
  a squared-error objective times a constant, which RMSProp undoes, and the mask decides the same
  way at any ``decoder_sigma``;
* gamma_t sum_j m_j (``open_cost`` 1, ramped in over 1000 batches): a price per open dimension,
  the L1 relaxation of the count the paper minimizes. Without it the critic's W was too weak and
  noisy to close anything in tens of epochs and every mask drifted to 1;
* m starts at 0.5 everywhere, c_t = (2 / M) 2^(t / 500) (continuous), mask rate 1e-2.

(R_M takes reconstruction, not all of L_AE, in both: V's gradient in m_j would hold open every
dimension the encoder happens to use.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import LikelihoodName
from latentzoo.zoo.maskaae_recipes import LMGAE_RECIPES, LMGAERecipe, WAEGPRecipe
from latentzoo.zoo.optimizers import OPTIMIZERS
from latentzoo.zoo.phases import Phase
from latentzoo.zoo.recipes import Recipe
from latentzoo.zoo.registry import register_model
from latentzoo.zoo.wae_gp import WAEGP

__all__ = ["LMGAE"]


@register_model
class LMGAE(WAEGP):
    """Latent Masked Generative Auto-Encoder: WAE-GP with a learned mask over the latent code.

    The mask acts inside :meth:`decode` and before the critic (:meth:`gate`), so every code that
    reaches the decoder is masked, whatever :meth:`sample_latent` drew it. :meth:`encode` returns
    the unmasked code.

    Args:
        recipe: ``authors`` or ``latentzoo`` (module docstring); the ``lmgae-grid`` suite
            measures which to make the default.
        var_weight: lambda_v; None: the recipe's (100, 1).
        mask_ae_weight: beta; None: the recipe's (1000, 3).
        mask_lr: The mask's RMSProp rate; None: the recipe's (5e-4, 1e-2).
        mask_init: Every m_j at the start, in (0, 1); None: the recipe's (v ~ U[0, 5], 0.5).
        mask_threshold: A dimension is active when its mask entry is >= this times the
            largest entry.
        open_cost: gamma, the price per open dimension once warmed up; None: the recipe's (0, 1).
        open_cost_warmup_steps: Steps over which gamma_t rises linearly from 0 to ``open_cost``.
        binarize_start: c_0 of the binarizing regularizer; None means 2 / latent_dim.
        binarize_max: The cap on c_t.
        binarize_doubling_steps: Steps over which c_t doubles; None: the recipe's (4 I, 500).
        data_shape, latent_dim, likelihood, decoder_sigma, gp_weight, n_critic, critic_lr,
            generator_lr, critic_width, width, lr, prior: See :class:`WAEGP`.
    """

    legacy_hparams: ClassVar[Mapping[str, Any]] = {"recipe": "latentzoo"}
    constants: LMGAERecipe
    mask_steps: Tensor

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        recipe: Recipe = "latentzoo",
        likelihood: LikelihoodName = "gaussian_fixed",
        decoder_sigma: float = 1.0,
        gp_weight: float = 10.0,
        n_critic: int = 5,
        critic_lr: float | None = None,
        generator_lr: float | None = None,
        critic_width: int | None = None,
        var_weight: float | None = None,
        mask_ae_weight: float | None = None,
        mask_lr: float | None = None,
        mask_init: float | None = None,
        mask_threshold: float = 0.1,
        open_cost: float | None = None,
        open_cost_warmup_steps: int = 1000,
        binarize_start: float | None = None,
        binarize_max: float = 2048.0,
        binarize_doubling_steps: int | None = None,
        width: int = 32,
        lr: float = 5e-4,
        prior: LatentDensity | None = None,
    ) -> None:
        super().__init__(data_shape, latent_dim, recipe, "separate", likelihood, decoder_sigma,
                         1.0, gp_weight, n_critic, critic_lr, generator_lr, critic_width, width,
                         lr, prior)  # fmt: skip
        given = {"var_weight": var_weight, "mask_ae_weight": mask_ae_weight, "mask_lr": mask_lr,
                 "open_cost": open_cost,
                 "binarize_doubling_steps": binarize_doubling_steps}  # fmt: skip
        if any(v is not None and v < 0 for v in given.values()) or mask_lr == 0:
            raise ValueError(f"need these >= 0 (mask_lr > 0) or None, got {given}")
        if not 0 < mask_threshold < 1 or (mask_init is not None and not 0 < mask_init < 1):
            raise ValueError(
                f"mask_init and mask_threshold must lie in (0, 1), got {mask_init}, "
                f"{mask_threshold}"
            )
        if open_cost_warmup_steps < 1 or binarize_doubling_steps == 0 or (binarize_start or 0) < 0:
            raise ValueError(
                f"need open_cost_warmup_steps >= 1, binarize_doubling_steps >= 1 and "
                f"binarize_start >= 0, got {open_cost_warmup_steps}, {binarize_doubling_steps}, "
                f"{binarize_start}"
            )
        self.overrides.update(given, mask_init=mask_init)
        self.apply_recipe()
        self.mask_threshold = mask_threshold
        self.open_cost_warmup_steps = open_cost_warmup_steps
        self.binarize_start = 2.0 / latent_dim if binarize_start is None else binarize_start
        self.binarize_max = binarize_max
        init = self.constants.mask_init
        v = 5 * torch.rand(latent_dim) if init is None else torch.full((latent_dim,), init)
        self.mask_param = nn.Parameter(v if init is None else -torch.log1p(-v))  # m = 1 - e^-v
        # Steps trained (mask steps, one a batch or cycle), for the schedules; a buffer so that it
        # resumes from checkpoints, including those written before one global_step meant one batch.
        self.register_buffer("mask_steps", torch.zeros((), dtype=torch.long))

    @override
    def recipe_table(self) -> WAEGPRecipe:
        return LMGAE_RECIPES[self.recipe](self.latent_dim)

    @override
    def steps_trained(self) -> int:
        return int(self.mask_steps)

    # -- the mask ---------------------------------------------------------------------------------
    @property
    def mask(self) -> Tensor:
        """m = 1 - exp(-v), (latent_dim,)."""
        return 1 - torch.exp(-self.mask_param)

    @property
    def active_dims(self) -> int:
        """Number of mask entries >= ``mask_threshold`` times the largest entry.

        Relative, not absolute, because the scale of m is not the model's to keep: D's first
        layer is linear in m * e, so m_j and column j of its weights trade off (m_j -> m_j / s,
        column j -> s column j leaves D(m * e) unchanged), and latentzoo's price gamma sum m_j
        shrinks every entry while D's weights grow to match. The entries D reads can stay apart
        from the rest after all have shrunk below any fixed threshold: at (n, m) = (8, 32) in
        ``lmgae-grid`` every entry ended below 0.05, the 8 largest at 0.39-1 times the largest,
        the other 24 below 0.006 times it. The same rule as the holes' gate
        (:func:`latentzoo.callbacks.holes.open_gate`); for a mask of 0s and 1s it is the count
        of 1s. An all-zero mask has none active.
        """
        return len(self.used_latent_dims())

    @override
    def gate(self, z: Tensor) -> Tensor:
        return z * self.mask  # (B, m)

    @override
    def latent_usage(self) -> Tensor:
        return self.mask.detach()

    @override
    def used_latent_dims(self) -> Tensor:
        m = self.mask.detach()
        return torch.nonzero((m >= self.mask_threshold * m.max()) & (m > 0)).squeeze(1)

    @torch.no_grad()
    def project_mask(self) -> None:
        """Projected gradient step: v back onto v >= 0 (m >= 0), and count the step."""
        self.mask_param.clamp_(min=0)
        self.mask_steps += 1

    def binarize_weight(self) -> float:
        """c_t: ``binarize_start`` doubled every ``binarize_doubling_steps`` steps, capped."""
        doublings = self.steps_trained() / self.constants.binarize_doubling_steps
        doublings = math.floor(doublings) if self.constants.binarize_stepwise else doublings
        return min(self.binarize_max, self.binarize_start * 2.0 ** min(doublings, 64.0))

    def open_cost_weight(self) -> float:
        """gamma_t: ``open_cost`` ramped up linearly over ``open_cost_warmup_steps`` steps."""
        ramp = min(1.0, self.steps_trained() / self.open_cost_warmup_steps)
        return self.constants.open_cost * ramp

    # -- loss terms -------------------------------------------------------------------------------
    @override
    def regularizers(self, z: Tensor, out: Tensor) -> dict[str, Tensor]:
        """``var_penalty`` = lambda_v V as it enters L_AE (latentzoo: times the precision)."""
        penalty = self.constants.var_weight * self.constants.variance_penalty(z, self.mask)
        if self.constants.var_precision:  # recon / precision is the squared error / 2
            penalty = penalty / self.likelihood.variance(out).detach().mean().clamp_min(1e-6)
        return {"var_penalty": penalty}

    def squared_error(self, x: Tensor, out: Tensor) -> Tensor:
        """Batch mean of ||x - D(m * z)||^2 / 2 for decoder output ``out``: latentzoo's R_M,
        the same whatever the likelihood and its scale."""
        return 0.5 * (x - self.likelihood.mean(out)).pow(2).flatten(1).sum(1).mean()

    def mask_loss(self, x: Tensor, prior: Tensor | None = None) -> dict[str, Tensor]:
        """L_M; the prior draw of W is drawn unless given. E, D and f are fixed here."""
        c = self.constants
        with torch.no_grad():
            z = self.encode(x)  # (B, m)
        out = self.decoder(self.gate(z))
        own = c.mask_reconstruction == "reconstruction"
        recon = self.reconstruction(x, out) if own else self.squared_error(x, out)
        binarize = (self.mask * (1 - self.mask)).abs().sum()
        loss = (
            c.mask_ae_weight * recon
            + c.critic_term(self.wasserstein(z, prior))
            + self.binarize_weight() * binarize
            + self.open_cost_weight() * self.mask.sum()
        )
        active = loss.new_tensor(float(self.active_dims))
        return {"loss": loss, "binarize": binarize, "active_dims": active}

    @override
    def phases(self) -> list[Phase]:
        """WAE-GP's phases in the recipe's order, then the mask's."""
        c = self.constants
        drop = self.lr_drop_factor if c.lr_drop_after is not None else None
        mask = Phase("mask", self.mask_loss, [self.mask_param], c.mask_lr, optimizer=OPTIMIZERS[
            c.optimizer], after_step=self.project_mask, lr_factor=drop)  # fmt: skip
        return [*super().phases(), mask]

"""LMGAE: a WAE-GP that learns which latent dimensions to switch off.

Mondal et al., "Towards Latent Space Optimality for Auto-Encoder Based Generative Models" (later
"MaskAAE"), sec. 4. A mask m in [0, 1]^M multiplies (Hadamard product) both the encodings and the
prior samples before the decoder D and the critic f, and four losses are minimized in turn on
every batch, each by its own optimizer:

    (1) L_AE = E_x c(x, D(m * E(x))) + lambda_v sum_j (1 - m_j) Var_x[E(x)_j]   encoder, decoder
    (2) L_G  = -E_x f(m * E(x))                                                  encoder
    (3) L_C  = E_x f(m * E(x)) - E_z f(m * z) + lambda_gp GP                     critic
    (4) L_M  = beta c(x, D(m * E(x))) + W_f(m) + c_t sum_j |m_j (1 - m_j)|
                                                    + gamma_t sum_j m_j          mask

with W_f(m) = E_z f(m * z) - E_x f(m * E(x)) the critic's Wasserstein estimate. The variance
penalty in (1) makes the encoder stop using the dimensions the mask is closing; W_f in (4) closes
the dimensions in which the encodings cannot look like N(0, 1) (a data manifold of dimension n
cannot fill more than n Gaussian dimensions), and reconstruction in (4) keeps open the ones the
decoder needs. At the end m is (nearly) binary and counts the data's latent dimension.

Relaxation and regularizers chosen here (the paper leaves them open); each line of (4) is one
term of :meth:`LMGAE.mask_loss`:

* m_j = 1 - exp(-v_j) with v_j >= 0, kept so by projecting v onto [0, inf) after every mask
  step (:meth:`LMGAE.project_mask`). This is the authors' parametrization. Unlike a sigmoid it
  reaches an exact 0 (v_j = 0), so a closed dimension is truly cut from decoder and critic, and
  dm/dv = 1 - m is 1 there, so a dimension closed too early can reopen if reconstruction needs
  it; near m = 1 the gradient fades, so open dimensions do not flicker under the critic's noise.
* c_t sum_j |m_j (1 - m_j)|: zero exactly at the binary values, largest at 1/2. c_t starts at
  ``binarize_start`` (2 / M by default, the authors') and doubles every
  ``binarize_doubling_steps`` batches up to ``binarize_max`` (2048): small while the mask is
  still deciding, then large enough to snap it to {0, 1}.
* gamma_t sum_j m_j (``open_cost``, ramped in linearly over ``open_cost_warmup_steps`` so the
  auto-encoder has learnt which dimensions it needs first): a price per open dimension, the L1
  relaxation of the count of open dimensions that the paper's argument minimizes. This term is
  ours. Without it, in CPU-sized runs (tens of epochs), W_f was too weak and noisy to close
  anything (the critic lags the encoder, which takes two steps per batch) and every mask drifted
  to 1. A needed dimension is worth far more reconstruction than gamma; a spurious one is worth
  none once the variance penalty has emptied it.
* (4) takes reconstruction, not all of L_AE: the variance penalty's gradient in m_j is
  -lambda_v Var[E(x)_j], which would hold open every dimension the encoder happens to use.
* Units. The mask's decision must not depend on the likelihood's scale (``decoder_sigma``, or
  which likelihood): a reconstruction cost of ||x - D(z)||^2 / (2 sigma^2) would make every open
  dimension worth 1 / sigma^2 times more against the fixed price gamma. So (4)'s reconstruction
  is the squared error ||x - D(m * z)||^2 / 2 of the decoder's mean, whatever the likelihood, and
  (1)'s variance penalty is weighted by the likelihood's precision 1 / Var[x | z] (averaged over
  coordinates; 1 / sigma^2 for ``gaussian_fixed``), so that (1) is a squared-error objective
  scaled as a whole, which RMSProp undoes. At any ``decoder_sigma`` LMGAE trains as it does at
  sigma = 1; the test suite checks the gradients. The weights beta = 3 and lambda_v = 1 are
  in those units (the authors' 1000 and 100 were for a per-pixel mean squared error).

A dimension counts as active when m_j >= ``mask_threshold`` (0.1, the authors').

(1)-(4) are the four phases of :meth:`LMGAE.phases`, run in turn on every batch by the engine in
:mod:`latentzoo.zoo.phases`; a batch is one ``global_step`` however many critic steps it takes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import LikelihoodName
from latentzoo.zoo.phases import Phase
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
        var_weight: lambda_v of the variance penalty in L_AE.
        mask_ae_weight: beta, weight of reconstruction in the mask loss L_M.
        mask_lr: RMSProp learning rate of the mask parameters v.
        mask_init: Initial value of every mask entry, in (0, 1).
        mask_threshold: A dimension is active when its mask entry is >= this.
        open_cost: gamma, the price per open dimension in L_M once warmed up.
        open_cost_warmup_steps: Batches over which gamma_t rises linearly from 0 to ``open_cost``.
        binarize_start: c_0 of the binarizing regularizer; None means 2 / latent_dim.
        binarize_max: The cap on c_t.
        binarize_doubling_steps: Batches over which c_t doubles.
        data_shape, latent_dim, likelihood, decoder_sigma, reg_weight, gp_weight, n_critic,
            critic_lr, width, lr, prior: See :class:`WAEGP` (``reg_weight`` is unused: the generator
            loss L_G has its own optimizer).
    """

    mask_steps: Tensor

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        likelihood: LikelihoodName = "gaussian_fixed",
        decoder_sigma: float = 0.1,
        reg_weight: float = 1.0,
        gp_weight: float = 10.0,
        n_critic: int = 5,
        critic_lr: float = 5e-4,
        var_weight: float = 1.0,
        mask_ae_weight: float = 3.0,
        mask_lr: float = 1e-2,
        mask_init: float = 0.5,
        mask_threshold: float = 0.1,
        open_cost: float = 1.0,
        open_cost_warmup_steps: int = 1000,
        binarize_start: float | None = None,
        binarize_max: float = 2048.0,
        binarize_doubling_steps: int = 500,
        width: int = 32,
        lr: float = 5e-4,
        prior: LatentDensity | None = None,
    ) -> None:
        super().__init__(
            data_shape=data_shape,
            latent_dim=latent_dim,
            likelihood=likelihood,
            decoder_sigma=decoder_sigma,
            reg_weight=reg_weight,
            gp_weight=gp_weight,
            n_critic=n_critic,
            critic_lr=critic_lr,
            width=width,
            lr=lr,
            prior=prior,
        )
        if not 0 < mask_init < 1 or not 0 < mask_threshold < 1:
            raise ValueError(
                f"mask_init and mask_threshold must lie in (0, 1), got {mask_init}, "
                f"{mask_threshold}"
            )
        if var_weight < 0 or mask_ae_weight < 0 or mask_lr <= 0:
            raise ValueError(
                f"var_weight and mask_ae_weight must be >= 0 and mask_lr > 0, got {var_weight}, "
                f"{mask_ae_weight}, {mask_lr}"
            )
        if open_cost < 0 or open_cost_warmup_steps < 1:
            raise ValueError(
                f"open_cost must be >= 0 and open_cost_warmup_steps >= 1, got {open_cost}, "
                f"{open_cost_warmup_steps}"
            )
        if binarize_doubling_steps < 1 or (binarize_start is not None and binarize_start < 0):
            raise ValueError(
                f"binarize_doubling_steps must be >= 1 and binarize_start >= 0, got "
                f"{binarize_doubling_steps}, {binarize_start}"
            )
        self.var_weight = var_weight
        self.mask_ae_weight = mask_ae_weight
        self.mask_lr = mask_lr
        self.mask_threshold = mask_threshold
        self.open_cost = open_cost
        self.open_cost_warmup_steps = open_cost_warmup_steps
        self.binarize_start = 2.0 / latent_dim if binarize_start is None else binarize_start
        self.binarize_max = binarize_max
        self.binarize_doubling_steps = binarize_doubling_steps
        # v with m = 1 - exp(-v); (latent_dim,)
        self.mask_param = nn.Parameter(torch.full((latent_dim,), -math.log(1 - mask_init)))
        # Batches trained (mask steps, one a batch), for the c_t and gamma_t schedules; a buffer so
        # that it resumes from checkpoints, including those written before one global_step
        # meant one batch.
        self.register_buffer("mask_steps", torch.zeros((), dtype=torch.long))

    # -- the mask ---------------------------------------------------------------------------------
    @property
    def mask(self) -> Tensor:
        """m = 1 - exp(-v), (latent_dim,)."""
        return 1 - torch.exp(-self.mask_param)

    @property
    def active_dims(self) -> int:
        """Number of mask entries >= ``mask_threshold``."""
        return int((self.mask >= self.mask_threshold).sum())

    def gate(self, z: Tensor) -> Tensor:
        return z * self.mask  # (B, m)

    def latent_usage(self) -> Tensor:
        return self.mask.detach()

    def used_latent_dims(self) -> Tensor:
        return torch.nonzero(self.mask >= self.mask_threshold).squeeze(1)  # the active dims

    @torch.no_grad()
    def project_mask(self) -> None:
        """Projected gradient step: v back onto v >= 0 (m >= 0), and count the step."""
        self.mask_param.clamp_(min=0)
        self.mask_steps += 1

    def binarize_weight(self) -> float:
        """c_t: ``binarize_start`` doubled every ``binarize_doubling_steps``, capped."""
        doublings = int(self.mask_steps) / self.binarize_doubling_steps
        return min(self.binarize_max, self.binarize_start * 2.0**doublings)

    def open_cost_weight(self) -> float:
        """gamma_t: ``open_cost`` ramped up linearly over ``open_cost_warmup_steps`` batches."""
        return self.open_cost * min(1.0, int(self.mask_steps) / self.open_cost_warmup_steps)

    # -- loss terms -------------------------------------------------------------------------------
    def variance_penalty(self, z: Tensor) -> Tensor:
        """sum_j (1 - m_j) Var_batch[z_j] for encodings z (B, m)."""
        return ((1 - self.mask) * z.var(0)).sum()

    def autoencoder_loss(self, x: Tensor) -> dict[str, Tensor]:
        """(1) L_AE: reconstruction plus the variance penalty; no generator term here."""
        z = self.encode(x)  # (B, m)
        out = self.decoder(self.gate(z))
        recon = self.likelihood.nll(x, out).mean()
        # The likelihood's precision 1 / Var[x | z] (1 / sigma^2 for gaussian_fixed) puts the
        # penalty in the units of reconstruction: recon / precision is the squared error / 2.
        precision = 1 / self.likelihood.variance(out).detach().mean().clamp_min(1e-6)
        var = self.variance_penalty(z)
        loss = recon + self.var_weight * precision * var
        return {"loss": loss, "recon": recon, "var_penalty": var}

    def squared_error(self, x: Tensor, z: Tensor) -> Tensor:
        """Batch mean of ||x - D(m * z)||^2 / 2: the mask loss's reconstruction cost.

        It is the decoder mean's squared error whatever the likelihood and ``decoder_sigma``, so
        the mask prices a dimension in the same units at every likelihood scale.
        """
        x_hat = self.likelihood.mean(self.decoder(self.gate(z)))  # (B, *data_shape)
        return 0.5 * (x - x_hat).pow(2).flatten(1).sum(1).mean()

    def generator_loss(self, x: Tensor) -> dict[str, Tensor]:
        """(2) L_G = -E f(m * E(x))."""
        generator = -self.score(self.encode(x)).mean()
        return {"loss": generator, "generator": generator}

    def mask_loss(self, x: Tensor) -> dict[str, Tensor]:
        """(4) L_M = beta recon + W_f(m) + c_t sum |m (1 - m)| + gamma_t sum m; E, D, f fixed."""
        with torch.no_grad():
            z = self.encode(x)  # (B, m)
        recon = self.squared_error(x, z)
        w = self.wasserstein(z)
        binarize = (self.mask * (1 - self.mask)).abs().sum()
        l1 = self.mask.sum()
        loss = (
            self.mask_ae_weight * recon
            + w
            + self.binarize_weight() * binarize
            + self.open_cost_weight() * l1
        )
        active = loss.new_tensor(float(self.active_dims))
        return {"loss": loss, "binarize": binarize, "active_dims": active}

    def phases(self) -> list[Phase]:
        """L_AE, L_G, L_C (``n_critic`` steps), L_M: WAE-GP's two phases plus two."""
        autoencoder, critic = super().phases()
        return [
            autoencoder,
            Phase("generator", self.generator_loss, self.encoder.parameters(), self.lr),
            critic,
            Phase(
                "mask",
                self.mask_loss,
                [self.mask_param],
                self.mask_lr,
                after_step=self.project_mask,
            ),
        ]

"""beta-VAE (Higgins et al. 2017) and its capacity-annealed objective (Burgess et al. 2018).

Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework": the KL term of the ELBO is weighted by beta > 1,

    L = E_q[-log p(x|z)] + beta * KL(q(z|x) || p(z)).

Burgess et al., "Understanding disentangling in beta-VAE", eq. (8): instead of a weight, a target
capacity C for the KL that grows linearly from 0 to ``capacity_max`` nats over
``capacity_steps`` optimizer steps, with a large weight gamma pulling the KL onto it:

    L = E_q[-log p(x|z)] + gamma * |KL(q(z|x) || p(z)) - C|.

Only :meth:`VAE.kl_penalty` differs from the VAE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import LikelihoodName
from latentzoo.zoo.registry import register_model
from latentzoo.zoo.vae import VAE

__all__ = ["BetaVAE"]


@register_model
class BetaVAE(VAE):
    """VAE with a reweighted (``objective="beta"``) or capacity-targeted KL term.

    Args:
        beta: Weight of the KL for ``objective="beta"`` (4 in Higgins et al.'s dSprites runs).
        objective: ``beta`` (Higgins et al.) or ``capacity`` (Burgess et al.).
        gamma: Weight of |KL - C| for ``objective="capacity"`` (1000 in Burgess et al.).
        capacity_max: Final capacity C in nats (25 in Burgess et al.'s dSprites runs).
        capacity_steps: Optimizer steps over which C rises linearly from 0 to ``capacity_max``.
        data_shape, latent_dim, likelihood, decoder_sigma, width, lr, prior: See :class:`VAE`.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        likelihood: LikelihoodName = "gaussian_fixed",
        decoder_sigma: float = 0.1,
        beta: float = 4.0,
        objective: Literal["beta", "capacity"] = "beta",
        gamma: float = 1000.0,
        capacity_max: float = 25.0,
        capacity_steps: int = 100_000,
        width: int = 32,
        lr: float = 1e-3,
        prior: LatentDensity | None = None,
    ) -> None:
        super().__init__(data_shape, latent_dim, likelihood, decoder_sigma, width, lr, prior)
        if beta < 0 or gamma < 0 or capacity_max < 0:
            raise ValueError(
                f"beta, gamma and capacity_max must be >= 0, got {beta}, {gamma}, {capacity_max}"
            )
        if capacity_steps < 1:
            raise ValueError(f"capacity_steps must be >= 1, got {capacity_steps}")
        self.beta = beta
        self.objective = objective
        self.gamma = gamma
        self.capacity_max = capacity_max
        self.capacity_steps = capacity_steps

    def capacity(self) -> float:
        """The target C at the current optimizer step, in nats."""
        return self.capacity_max * min(1.0, self.global_step / self.capacity_steps)

    def kl_penalty(self, kl: Tensor) -> Tensor:
        if self.objective == "capacity":
            return self.gamma * (kl - self.capacity()).abs()
        return self.beta * kl

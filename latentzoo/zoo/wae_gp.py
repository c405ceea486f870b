"""WAE-GP: a Wasserstein auto-encoder whose latent matching is a WGAN-GP critic.

Tolstikhin et al. 2018, "Wasserstein Auto-Encoders" (WAE-GAN, Algorithm 2), with the critic
trained as in Gulrajani et al. 2017, "Improved Training of Wasserstein GANs" (Algorithm 1, eq. 3):

    L_C  = E_x f(E(x)) - E_z f(z) + lambda_gp E_u[(||grad_u f(u)||_2 - 1)^2],
           u = eps z + (1 - eps) E(x),  eps ~ U[0, 1],  z ~ N(0, I),
    L_AE = E_x c(x, D(E(x))) + lambda * (-E_x f(E(x))),

with c(x, y) the decoder's negative log-likelihood (:mod:`latentzoo.zoo.likelihoods`) and f the
critic, an MLP on the latent code. ``-L_C`` without the penalty is the critic's estimate of the
Wasserstein-1 distance W(q(z), p(z)); it is logged as ``wasserstein``. The critic takes
``n_critic`` steps per auto-encoder step and every optimizer is RMSProp, as in the LMGAE paper's
experiments (Mondal et al., "Towards Latent Space Optimality for Auto-Encoder Based Generative
Models", sec. 5), whose baseline this model is.

The critic learns as fast as the auto-encoder (``critic_lr`` = ``lr``), unlike the LMGAE authors'
code (critic 5x slower). With the slower critic, at m = n the encoder overshoots the critic's
gradient and q(z) enters a limit cycle: on the synthetic data (n = m = 8) the per-dimension
variance of E(x) swung between 0.5 and 1.9 with a period of about 6 epochs, the critic's W
estimate went negative (pointing the wrong way) and the sample Fréchet distance swung between 3
and 23 while reconstructions were steady. With equal rates the variance stays within 0.8-1.1.
This is the two time-scale rule of Heusel et al. 2017: the critic must not lag the generator.

The model declares its training as two phases of the engine in :mod:`latentzoo.zoo.phases`
(auto-encoder, then ``n_critic`` critic steps, on every batch; one ``global_step`` per batch).
Subclasses change a term (:meth:`WAEGP.gate`, :meth:`WAEGP.autoencoder_loss`, ...) or the list
itself (:meth:`WAEGP.phases`); LMGAE does both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.zoo import nets
from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import LikelihoodName, make_likelihood
from latentzoo.zoo.phases import Phase, PhasedAutoencoder
from latentzoo.zoo.registry import register_model

__all__ = ["WAEGP", "gradient_penalty"]


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, eps: Tensor | None = None
) -> Tensor:
    """Gulrajani et al.'s penalty E_u[(||grad_u f(u)||_2 - 1)^2] on interpolates, a scalar.

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
class WAEGP(PhasedAutoencoder):
    """Wasserstein auto-encoder with a WGAN-GP latent critic (WAE-GAN with a gradient penalty).

    Args:
        data_shape: See :class:`AutoencoderModule`.
        latent_dim: See :class:`AutoencoderModule`.
        likelihood: The reconstruction cost c(x, D(z)) is this decoder NLL; see
            :class:`~latentzoo.zoo.VAE`.
        decoder_sigma: Standard deviation of ``gaussian_fixed``: the cost is ||x - D(z)||^2 / (2
            sigma^2) per sample, so sigma sets reconstruction against the critic term.
        reg_weight: lambda, weight of the generator term -E f(E(x)) in the auto-encoder loss.
        gp_weight: lambda_gp of the gradient penalty (10 in Gulrajani et al.).
        n_critic: Critic steps per auto-encoder step (5 in Gulrajani et al.).
        critic_lr: RMSProp learning rate of the critic; as fast as the auto-encoder by default
            (the LMGAE authors' 1e-4, 5x slower, makes q(z) oscillate; see the module docstring).
        width: See :class:`AutoencoderModule`; the critic is an MLP of ``4 * width`` units.
        lr: RMSProp learning rate of the encoder and decoder (5x the critic's, as the authors').
        prior: The critic's target p(z), a fixed :class:`~latentzoo.zoo.densities.LatentDensity`
            (None: N(0, I)); its parameters, if any, are not trained.
    """

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
        width: int = 32,
        lr: float = 5e-4,
        prior: LatentDensity | None = None,
    ) -> None:
        super().__init__(
            data_shape=data_shape, latent_dim=latent_dim, width=width, lr=lr, prior=prior
        )
        if reg_weight < 0 or gp_weight < 0:
            raise ValueError(
                f"reg_weight and gp_weight must be >= 0, got {reg_weight}, {gp_weight}"
            )
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if critic_lr <= 0:
            raise ValueError(f"critic_lr must be > 0, got {critic_lr}")
        self.reg_weight = reg_weight
        self.gp_weight = gp_weight
        self.n_critic = n_critic
        self.critic_lr = critic_lr
        self.likelihood = make_likelihood(likelihood, decoder_sigma)
        self.encoder = self.build_encoder(latent_dim)
        self.decoder = self.build_decoder(self.likelihood.out_channels)
        self.critic = self.build_critic()

    def build_critic(self) -> nn.Module:
        """f: (B, latent_dim) -> (B, 1); no batch norm, which would void the per-sample penalty."""
        return nets.mlp(self.latent_dim, 1, hidden=4 * self.width)

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
    def reconstruction(self, x: Tensor, z: Tensor) -> Tensor:
        """Batch mean of c(x, D(gate(z)))."""
        return self.likelihood.nll(x, self.decoder(self.gate(z))).mean()

    def wasserstein(self, z: Tensor) -> Tensor:
        """The critic's estimate E_p f(z') - E_q f(z) of W(p, q) for encodings z (B, m).

        z' comes from the prior itself (``sample_prior``), never from an attached sampler: a
        GMM fitted to q would make the regularizer match q to itself.
        """
        return self.score(self.sample_prior(len(z))).mean() - self.score(z).mean()

    def autoencoder_loss(self, x: Tensor) -> dict[str, Tensor]:
        """L_AE = reconstruction - lambda E f(E(x)), minimized over encoder and decoder."""
        z = self.encode(x)  # (B, m)
        recon = self.reconstruction(x, z)
        generator = -self.score(z).mean()
        return {"loss": recon + self.reg_weight * generator, "recon": recon, "generator": generator}

    def critic_loss(self, x: Tensor) -> dict[str, Tensor]:
        """L_C = -W + lambda_gp * GP, with the penalty taken on the gated codes."""
        with torch.no_grad():
            z = self.encode(x)  # (B, m)
        w = self.wasserstein(z)
        real, fake = self.gate(self.sample_prior(len(z))), self.gate(z)
        gp = gradient_penalty(self.critic, real, fake)
        return {"loss": -w + self.gp_weight * gp, "wasserstein": w, "gp": gp}

    def compute_losses(self, x: Tensor) -> dict[str, Tensor]:
        """The auto-encoder objective and the critic's W estimate (no penalty: it needs grad)."""
        losses = self.autoencoder_loss(x)
        losses["wasserstein"] = self.wasserstein(self.encode(x))
        return losses

    # -- optimization -----------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """The optimizers' steps on one batch, in order; one optimizer per phase."""
        # The likelihood's own parameters (gaussian_gamma's variance) train with the decoder.
        autoencoder = [
            *self.encoder.parameters(),
            *self.decoder.parameters(),
            *self.likelihood.parameters(),
        ]
        return [
            Phase("autoencoder", self.autoencoder_loss, autoencoder, self.lr),
            Phase(
                "critic", self.critic_loss, self.critic.parameters(), self.critic_lr, self.n_critic
            ),
        ]

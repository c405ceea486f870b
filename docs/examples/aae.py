"""Adversarial autoencoder (Makhzani et al. 2016, "Adversarial Autoencoders", sec. 2), a plugin.

A deterministic encoder E and a decoder D reconstruct x, while a discriminator f on the latent
code tells prior draws z ~ p(z) = N(0, I) from codes E(x) with the standard GAN loss, and E
learns to fool it; at the equilibrium the aggregated posterior q(z) = E_x delta(E(x)) is p(z):

    reconstruction   min_{E, D}  E_x c(x, D(E(x)))
    discriminator    min_f       -E_z log f(z) - E_x log(1 - f(E(x)))
    generator        min_E       -E_x log f(E(x))        (the non-saturating form)

Each line is one phase of latentzoo's engine (latentzoo/zoo/phases.py), stepped in turn on every
batch, as the paper's reconstruction and regularization phases; docs/plugins.md walks through it.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from latentzoo.zoo import register_model
from latentzoo.zoo.likelihoods import LikelihoodName, make_likelihood
from latentzoo.zoo.nets import mlp
from latentzoo.zoo.phases import Phase, PhasedAutoencoder


@register_model
class AAE(PhasedAutoencoder):
    """Adversarial autoencoder with the prior N(0, I); every optimizer is Adam.

    Args:
        likelihood: The reconstruction cost c is this decoder NLL (see ``VAE``).
        disc_lr: Adam's learning rate of the discriminator (``lr`` is E's and D's).
        data_shape, latent_dim, width, lr: See ``AutoencoderModule``.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 8,
        likelihood: LikelihoodName = "gaussian_fixed",
        width: int = 32,
        lr: float = 1e-3,
        disc_lr: float = 1e-3,
    ) -> None:
        super().__init__(data_shape=data_shape, latent_dim=latent_dim, width=width, lr=lr)
        self.disc_lr = disc_lr
        self.likelihood = make_likelihood(likelihood)
        self.encoder = self.build_encoder(latent_dim)
        self.decoder = self.build_decoder(self.likelihood.out_channels)
        self.discriminator = mlp(latent_dim, 1, hidden=4 * width)  # f's logit, (B, 1)

    def reconstruction(self, x: Tensor) -> dict[str, Tensor]:
        recon = self.likelihood.nll(x, self.decoder(self.encode(x))).mean()
        return {"loss": recon, "recon": recon}

    def discriminator_loss(self, x: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            z = self.encode(x)  # (B, latent_dim)
        real, fake = self.discriminator(self.sample_prior(len(z))), self.discriminator(z)
        return {"loss": gan_loss(real, True) + gan_loss(fake, False)}

    def generator_loss(self, x: Tensor) -> dict[str, Tensor]:
        return {"loss": gan_loss(self.discriminator(self.encode(x)), True)}

    def compute_losses(self, x: Tensor) -> dict[str, Tensor]:
        return {**self.reconstruction(x), "generator": self.generator_loss(x)["loss"]}

    def phases(self) -> list[Phase]:
        autoencoder = [*self.encoder.parameters(), *self.decoder.parameters()]
        encoder, critic, adam = (
            self.encoder.parameters(),
            self.discriminator.parameters(),
            torch.optim.Adam,
        )
        return [
            Phase("autoencoder", self.reconstruction, autoencoder, self.lr, optimizer=adam),
            Phase("discriminator", self.discriminator_loss, critic, self.disc_lr, optimizer=adam),
            Phase("generator", self.generator_loss, encoder, self.lr, optimizer=adam),
        ]


def gan_loss(logits: Tensor, real: bool) -> Tensor:
    """-log f (``real``) or -log(1 - f) of the discriminator's logits, averaged."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))

"""VAE (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

Encoder q(z|x) = N(mu(x), diag(sigma^2(x))), prior p(z) = N(0, I) unless another
:class:`~latentzoo.zoo.densities.LatentDensity` is given, decoder p(x|z) one of the likelihoods in
:mod:`latentzoo.zoo.likelihoods`. The loss is the negative ELBO

    -ELBO(x) = E_q[-log p(x|z)] + KL(q(z|x) || p(z)),
    KL = 1/2 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)     (p = N(0, I)),

with the expectation taken with one reparameterised sample z = mu + sigma * eps. A prior without
a closed-form KL (MoG, VampPrior, flow) gives the one-sample estimate log q(z|x) - log p(z) at
that same z. Subclasses that reweight the KL (beta-VAE) override :meth:`VAE.kl_penalty` alone;
those that add a term to the loss (the Lipschitz VAE) override :meth:`VAE.regularizers`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from latentzoo.zoo.base import AutoencoderModule
from latentzoo.zoo.densities import LatentDensity, kl_standard_normal
from latentzoo.zoo.likelihoods import LikelihoodName, make_likelihood
from latentzoo.zoo.registry import register_model

__all__ = ["VAE", "kl_standard_normal", "reparameterize"]


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
    """z = mu + sigma * eps ~ N(mu, diag(exp(logvar))), differentiable in mu and logvar.

    ``eps`` ~ N(0, I) is drawn here unless given (VAE-GAN reuses one draw across its passes).
    """
    if eps is None:
        eps = torch.randn_like(mu)
    return mu + eps * torch.exp(0.5 * logvar)


@register_model
class VAE(AutoencoderModule):
    """Variational autoencoder with a Bernoulli or Gaussian decoder.

    Args:
        data_shape: See :class:`AutoencoderModule`.
        latent_dim: See :class:`AutoencoderModule`.
        likelihood: The decoder p(x|z): ``bernoulli`` (logits; data in [0, 1]),
            ``gaussian_fixed`` (mean, fixed ``decoder_sigma``) or ``gaussian_learned`` (mean and
            per-coordinate variance). The default works on any data, images or vectors.
        decoder_sigma: Standard deviation of ``gaussian_fixed``; ignored otherwise.
        width: See :class:`AutoencoderModule`.
        lr: See :class:`AutoencoderModule`.
        prior: p(z), a :class:`~latentzoo.zoo.densities.LatentDensity` (``StandardNormal``,
            ``MoG``, ``VampPrior``, ``FlowPrior``); None is N(0, I). The model binds it to its
            latent dimension (and encoder); its parameters train with the encoder and decoder.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        likelihood: LikelihoodName = "gaussian_fixed",
        decoder_sigma: float = 0.1,
        width: int = 32,
        lr: float = 1e-3,
        prior: LatentDensity | None = None,
    ) -> None:
        super().__init__(data_shape, latent_dim, width, lr, prior)
        self.likelihood = make_likelihood(likelihood, decoder_sigma)
        self.encoder = self.build_encoder(2 * latent_dim)  # mu and log sigma^2
        self.decoder = self.build_decoder(self.likelihood.out_channels)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (B, latent_dim)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # keeps exp() finite early in training

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0]

    def kl_penalty(self, kl: Tensor) -> Tensor:
        """The regularizer made of the batch-mean KL; the plain ELBO uses it as is."""
        return kl

    def regularizers(self, x: Tensor, mu: Tensor) -> dict[str, Tensor]:
        """Extra terms added to the loss (and logged under their names); none in the VAE.

        Args:
            x: The batch.
            mu: Its posterior means, (B, latent_dim), in the graph of the loss.
        """
        return {}

    def compute_losses(self, x: Tensor) -> dict[str, Tensor]:
        mu, logvar = self.posterior(x)
        z = reparameterize(mu, logvar)
        recon = self.likelihood.nll(x, self.decoder(z)).mean()
        kl = self.prior.kl(mu, logvar, z).mean()
        extra = self.regularizers(x, mu)
        loss = recon + self.kl_penalty(kl)
        for term in extra.values():
            loss = loss + term
        return {"loss": loss, "recon": recon, "kl": kl, "nelbo": recon + kl, **extra}

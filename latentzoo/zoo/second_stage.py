"""Dai & Wipf 2019, "Diagnosing and enhancing VAE models", sec. 4: the second stage.

A second VAE with a learned decoder variance gamma, trained on the codes u ~ q(u|x) of a trained
first stage, whose aggregated posterior matches N(0, I) where the first stage's does not;
sampling goes z ~ N(0, I) -> second decoder -> u (+ its noise) -> first decoder.
:class:`SecondStageVAE` is that VAE, with the authors' network (TwoStageVAE @ 8718623,
``network/two_stage_vae_model.py``); :class:`SecondStage` is it as a latent density, fitted
after training (the ``two_stage`` sampler) or around the stage 2 that
:class:`~latentzoo.zoo.TwoStageVAE` trains itself.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from latentzoo.zoo import nets
from latentzoo.zoo.densities import LatentDensity, log_normal_diag, register_density
from latentzoo.zoo.likelihoods import adam_with_gamma
from latentzoo.zoo.vae import VAE, reparameterize

__all__ = ["SecondStage", "SecondStageVAE"]


class SecondStageVAE(VAE):
    """Dai & Wipf's second stage: a VAE with learned gamma whose data are codes u ~ q(u|x).

    Its data and latent dimension are both the code dimension ``dim``, as in the paper.
    :class:`SecondStage` fits one to a trained model's codes; :class:`latentzoo.zoo.TwoStageVAE`
    trains one as its stage 2.

    Args:
        dim: Code dimension.
        width: A quarter of the units of each hidden layer (256: the authors' 1024).
        lr: Adam's learning rate.
        gamma_lr: Adam's learning rate for gamma (see :func:`adam_with_gamma`).
        network: ``dai_wipf``: the authors' encoder and decoder (TwoStageVAE,
            ``network/two_stage_vae_model.py``), 3 x [Linear, ReLU] with the input concatenated
            to the last hidden layer before the output heads (:class:`~latentzoo.zoo.nets.SkipMLP`);
            ``mlp``: latentzoo's former 2 x [Linear, LeakyReLU(0.2)], no skip.
    """

    network: Literal["dai_wipf", "mlp"]

    def __init__(
        self,
        dim: int,
        width: int = 256,
        lr: float = 1e-3,
        gamma_lr: float = 1e-2,
        network: Literal["dai_wipf", "mlp"] = "dai_wipf",
    ) -> None:
        if network not in ("dai_wipf", "mlp"):
            raise ValueError(f"network must be 'dai_wipf' or 'mlp', got {network!r}")
        # The base class builds the nets in its __init__, which reads ``network``: set it first
        # (a plain attribute, which nn.Module allows before its own __init__).
        object.__setattr__(self, "network", network)
        super().__init__(
            data_shape=(dim,), latent_dim=dim, likelihood="gaussian_gamma", width=width, lr=lr
        )
        self.gamma_lr = gamma_lr

    def build_encoder(self, out_dim: int) -> nn.Module:
        if self.network == "mlp":
            return super().build_encoder(out_dim)
        return nets.SkipMLP(self.data_shape[0], out_dim, 4 * self.width)

    def build_decoder(self, out_channels: int) -> nn.Module:
        if self.network == "mlp":
            return super().build_decoder(out_channels)
        return nets.SkipMLP(self.latent_dim, out_channels * self.data_shape[0], 4 * self.width)

    def code_losses(self, mu: Tensor, logvar: Tensor | None = None) -> dict[str, Tensor]:
        """The negative ELBO on codes u = mu + sigma * eps ~ q(u|x) (u = mu when no logvar)."""
        u = mu if logvar is None else reparameterize(mu, logvar)  # (B, dim)
        losses = self.compute_losses(u.detach())
        losses["gamma"] = self.likelihood.gamma.detach()  # type: ignore[operator]
        return losses

    def sample_codes(self, n: int, noise: bool = True) -> Tensor:
        """n codes u = u^(z) + sqrt(gamma) eps, z ~ N(0, I), eps ~ N(0, I): a draw of the second
        stage's p(u) as the authors sample it (``two_stage_vae_model.py``: ``z = x_hat + gamma_z
        * eps``, their gamma being the decoder's standard deviation, this one's variance);
        ``noise=False``: the decoder's mean u^(z) alone."""
        u = self.sample(n)  # (n, dim)
        if not noise:
            return u
        return u + self.likelihood.variance(u).sqrt() * torch.randn_like(u)

    def configure_optimizers(self) -> torch.optim.Adam:
        return adam_with_gamma(self, self.lr, self.gamma_lr)


@register_density(name="two_stage")
class SecondStage(LatentDensity):
    """Dai & Wipf's second stage as a density: a :class:`SecondStageVAE` on the codes.

    ``fit`` trains it with Adam for ``epochs`` passes over the codes; a code of a stochastic
    encoder is redrawn u = mu + sigma * eps at every pass, as the paper trains on u ~ q(u|x).
    ``sample`` goes z ~ N(0, I) -> u = the second decoder's mean, plus its N(0, gamma I) noise
    (``noise``, the authors'); ``log_prob`` is the importance-weighted estimate of its marginal
    (Burda et al. 2016) with ``iw_samples`` draws of the second encoder, log 1/K sum_k p(u|z_k)
    p(z_k) / q(z_k|u), the density of the noisy samples: a VAE has no exact density.
    :meth:`around` views the stage 2 a :class:`~latentzoo.zoo.TwoStageVAE` trains as one.

    Args:
        dim: Code dimension (the second stage's data dimension and, as in the paper, its
            latent dimension); 0: set when bound to a model.
        width: A quarter of the units of its hidden layers (256: the authors' 1024).
        epochs: Passes over the codes.
        lr: Adam's learning rate.
        gamma_lr: Adam's learning rate for gamma (see
            :func:`latentzoo.zoo.likelihoods.adam_with_gamma`).
        batch_size: Codes per step.
        seed: Seed of the initialisation and the shuffling.
        iw_samples: K of the ``log_prob`` estimate.
        network: See :class:`SecondStageVAE`.
        noise: Add the decoder's noise to samples (the authors'), or return its mean.
    """

    vae: SecondStageVAE

    def __init__(
        self,
        dim: int = 0,
        width: int = 256,
        epochs: int = 20,
        lr: float = 1e-3,
        gamma_lr: float = 1e-2,
        batch_size: int = 128,
        seed: int = 0,
        iw_samples: int = 64,
        network: Literal["dai_wipf", "mlp"] = "dai_wipf",
        noise: bool = True,
    ) -> None:
        super().__init__(dim)
        if min(epochs, batch_size, iw_samples) < 1:
            raise ValueError(
                f"epochs, batch_size and iw_samples must be >= 1, got {epochs}, {batch_size}, "
                f"{iw_samples}"
            )
        self.width, self.lr, self.gamma_lr = width, lr, gamma_lr
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed
        self.iw_samples, self.network, self.noise = iw_samples, network, noise
        self.init_args = {"width": width, "epochs": epochs, "lr": lr, "gamma_lr": gamma_lr,
                          "batch_size": batch_size, "seed": seed, "iw_samples": iw_samples,
                          "network": network, "noise": noise}  # fmt: skip
        self._bind_given_dim()

    def build(self, dim: int) -> None:
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self.vae = SecondStageVAE(dim, self.width, self.lr, self.gamma_lr, self.network)

    @classmethod
    def around(cls, vae: SecondStageVAE, noise: bool = True) -> SecondStage:
        """A density over ``vae`` (trained elsewhere), sharing its modules."""
        density = cls(network=vae.network, noise=noise)
        density.latent_dim = vae.latent_dim
        density.vae = vae
        return density

    @torch.enable_grad()
    def fit(self, mu: Tensor, logvar: Tensor | None = None) -> None:
        self.check_codes(mu, min_n=2)
        device = next(self.vae.parameters()).device
        mu = mu.detach().to(device)
        logvar = None if logvar is None else logvar.detach().to(device)
        opt = self.vae.configure_optimizers()
        gen = torch.Generator().manual_seed(self.seed)
        self.vae.train()
        for _ in tqdm(range(self.epochs), desc="second stage", leave=False):
            for idx in torch.randperm(len(mu), generator=gen).split(self.batch_size):
                codes = (mu[idx], None if logvar is None else logvar[idx])
                loss = self.vae.code_losses(*codes)["loss"]
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.vae.eval()

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.vae.sample_codes(n, self.noise)

    @torch.no_grad()
    def log_prob(self, u: Tensor) -> Tensor:
        vae, k = self.vae, self.iw_samples
        mu, logvar = vae.posterior(u)  # (N, D) each
        z = reparameterize(mu[None], logvar[None], torch.randn(k, *mu.shape, device=u.device))
        flat = z.reshape(-1, z.shape[-1])  # (K N, D)
        log_px = -vae.likelihood.nll(u.repeat(k, 1), vae.decoder(flat)).reshape(k, -1)
        log_pz = vae.prior.log_prob(flat).reshape(k, -1)
        log_qz = log_normal_diag(z, mu[None], logvar[None])  # (K, N)
        return torch.logsumexp(log_px + log_pz - log_qz, 0) - math.log(k)  # (N,)

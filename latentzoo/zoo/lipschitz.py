"""Lipschitz-regularized VAE: pull the classes together in latent space (the seeds' slides on
latent density and sample diversity).

Under a N(0, I) prior, if the decoded classes have probabilities p, the expected distance from a
latent point to the nearest region of another class is at most
log(4 pi H2) / sqrt(2 H2), H2 = -log ||p||^2 (:mod:`latentzoo.metrics.diversity`): diverse samples
force the classes close together. The slides' experiment brings them closer on purpose with a
penalty on how far the encoder f (images -> posterior means) spreads pairs of a batch,

    omega = sum_{i < b/2} ||f(l_i) - f(l_{i+b/2})||^2 / ||l_i - l_{i+b/2}||^2,

added to the negative ELBO with weight lambda = 30, and with f's weights clipped to [-0.3, 0.3]
after each optimizer step to bound its Lipschitz constant (as in the WGAN). Their findings:
classes come closer, coverage of the latent space drops, sample quality hardly changes.

Clipping concerns f, the map omega measures: by default (``clip_modules="mean"``) the weights
and biases of the linear and convolutional layers that compute the posterior mean, not the
decoder, not batch-norm scales (a scale clamped from 1 to 0.3 shrinks activations without
bounding the layer's slope, gamma / sqrt(var_batch + eps)), not the log-variance rows of the
encoder's head. ``encoder`` clips every encoder parameter, ``all`` the decoder's too (the earlier
default, with which an earlier run of the priors suite measured the Lipschitz VAE).
omega is a sum over the b/2 pairs of a batch, so lambda's effect grows with the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import LikelihoodName
from latentzoo.zoo.registry import register_model
from latentzoo.zoo.vae import VAE

__all__ = ["LipschitzVAE", "lipschitz_penalty"]

Pairing = Literal["half", "shuffle"]
_WEIGHTED = (nn.Linear, nn.Conv2d)


def lipschitz_penalty(x: Tensor, fx: Tensor, pairing: Pairing = "half") -> Tensor:
    """omega = sum over b // 2 pairs of ||f(l_i) - f(l_j)||^2 / ||l_i - l_j||^2, a scalar.

    Args:
        x: The inputs l, (B, ...).
        fx: Their images f(l), (B, D).
        pairing: ``half`` pairs i with i + B // 2; ``shuffle`` does so after a random
            permutation of the batch. With odd B the last (permuted) input is left out.
    """
    h = len(x) // 2
    if h == 0:
        return fx.sum() * 0.0  # one input: no pair, and the graph stays connected
    order = torch.randperm(len(x), device=x.device) if pairing == "shuffle" else None
    if order is not None:
        x, fx = x[order], fx[order]
    dx = (x[:h] - x[h : 2 * h]).flatten(1).pow(2).sum(1)  # (h,)
    df = (fx[:h] - fx[h : 2 * h]).pow(2).sum(1)  # (h,)
    # Two identical inputs say nothing about the slope: their pair is dropped, not divided by 0.
    distinct = dx > 0
    return (df[distinct] / dx[distinct]).sum()


@register_model
class LipschitzVAE(VAE):
    """VAE with the slides' encoder Lipschitz penalty and weight clipping.

    Args:
        lipschitz_weight: lambda, the weight of omega (30 in the slides).
        clip_value: c: after every optimizer step the clipped parameters are clamped to
            [-c, c] (0.3 in the slides); None turns clipping off.
        clip_modules: What is clipped: ``mean`` = f, the encoder's linear and convolution
            weights and biases that compute the posterior mean (no batch-norm parameter, no
            log-variance row); ``encoder`` = every encoder parameter; ``all`` = every encoder
            and decoder parameter. A learned prior and the likelihood's own parameters are
            never clipped.
        pairing: How omega pairs the batch (see :func:`lipschitz_penalty`).
        data_shape, latent_dim, likelihood, decoder_sigma, width, lr, prior: See :class:`VAE`.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        likelihood: LikelihoodName = "gaussian_fixed",
        decoder_sigma: float = 0.1,
        lipschitz_weight: float = 30.0,
        clip_value: float | None = 0.3,
        clip_modules: Literal["mean", "encoder", "all"] = "mean",
        pairing: Pairing = "half",
        width: int = 32,
        lr: float = 1e-3,
        prior: LatentDensity | None = None,
    ) -> None:
        super().__init__(data_shape, latent_dim, likelihood, decoder_sigma, width, lr, prior)
        if lipschitz_weight < 0:
            raise ValueError(f"lipschitz_weight must be >= 0, got {lipschitz_weight}")
        if clip_value is not None and clip_value <= 0:
            raise ValueError(f"clip_value must be > 0 (or None: no clipping), got {clip_value}")
        if clip_modules not in ("mean", "encoder", "all") or pairing not in ("half", "shuffle"):
            raise ValueError(
                f"clip_modules must be 'mean', 'encoder' or 'all' and pairing 'half' or "
                f"'shuffle', got {clip_modules!r}, {pairing!r}"
            )
        self.lipschitz_weight = lipschitz_weight
        self.clip_value = clip_value
        self.clip_modules = clip_modules
        self.pairing: Pairing = pairing

    def clipped_parameters(self) -> list[Tensor]:
        """The parameters (or, for ``mean``, the head's mean rows) kept in [-c, c]."""
        if self.clip_modules != "mean":
            modules = [self.encoder] + ([self.decoder] if self.clip_modules == "all" else [])
            return [p for m in modules for p in m.parameters()]
        # f: every linear or conv layer of the encoder; its last, the head, emits [mu; logvar]
        *trunk, head = [m for m in self.encoder.modules() if isinstance(m, _WEIGHTED)]
        return [
            *(p for m in trunk for p in m.parameters()),
            *(p[: self.latent_dim] for p in head.parameters()),
        ]

    @torch.no_grad()
    def clip_weights(self) -> None:
        """Clamp :meth:`clipped_parameters` to [-c, c] in place."""
        if self.clip_value is not None:
            for p in self.clipped_parameters():
                p.clamp_(-self.clip_value, self.clip_value)

    @override
    def regularizers(self, x: Tensor, mu: Tensor) -> dict[str, Tensor]:
        """``lipschitz`` = lambda * omega, with f(x) the posterior means."""
        return {"lipschitz": self.lipschitz_weight * lipschitz_penalty(x, mu, self.pairing)}

    @override
    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer's step, then the clipping: it holds after every step, also with
        gradient accumulation (no step, no clipping needed) and when resuming."""
        super().optimizer_step(*args, **kwargs)
        self.clip_weights()

    @override
    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.clip_weights()  # the initial weights too: every forward sees a clipped net

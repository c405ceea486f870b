"""Decoder likelihoods p(x | z): the term that turns decoder output into a loss and a mean.

A decoder emits ``out_channels`` numbers per data coordinate; a likelihood reads them as the
parameters of a distribution over x. ``nll`` is the negative log-likelihood of each sample, summed
over coordinates and *including* the normalising constants, so that values are comparable across
likelihoods and the Gaussian's learned variance is trained by the exact objective.

``cost`` is the reconstruction cost of the WAE-GP/LMGAE authors' code instead (MaskAAE,
``MaskAAE_MNIST.py``): a mean over coordinates with no constant and no variance, binary
cross-entropy for ``bernoulli`` (the authors' MNIST loss) and the squared error of the mean for
the Gaussians (their commented-out alternative, for data not in [0, 1]).

The three rows of the LMGAE paper's VAE baselines are ``bernoulli``, ``gaussian_fixed`` and
``gaussian_learned``. ``gaussian_gamma`` is the decoder of Dai & Wipf 2019 ("Diagnosing and
enhancing VAE models", sec. 3-4): N(x; mu, gamma I) with one trainable scalar gamma shared by all
coordinates, which the 2-stage VAE needs.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LIKELIHOODS",
    "Bernoulli",
    "GaussianFixed",
    "GaussianGamma",
    "GaussianLearned",
    "Likelihood",
    "LikelihoodName",
    "adam_with_gamma",
    "make_likelihood",
]

LikelihoodName = Literal["bernoulli", "gaussian_fixed", "gaussian_learned", "gaussian_gamma"]
_LOG_2PI = math.log(2 * math.pi)


def _sum_per_sample(t: Tensor) -> Tensor:
    return t.flatten(1).sum(1)  # (B, ...) -> (B,)


class Likelihood(nn.Module):
    """Base: subclasses set ``out_channels`` and implement ``nll`` and ``mean``."""

    out_channels: int = 1

    def nll(self, x: Tensor, out: Tensor) -> Tensor:
        """-log p(x | decoder output), shape (B,)."""
        raise NotImplementedError

    def mean(self, out: Tensor) -> Tensor:
        """E[x | decoder output], shaped like x."""
        raise NotImplementedError

    def variance(self, out: Tensor) -> Tensor:
        """Var[x | decoder output] per coordinate, shaped like x (or broadcastable to it)."""
        raise NotImplementedError

    def cost(self, x: Tensor, out: Tensor) -> Tensor:
        """Mean over coordinates of the squared error of the mean, (B,); Bernoulli: of the
        binary cross-entropy."""
        return (x - self.mean(out)).pow(2).flatten(1).mean(1)


class Bernoulli(Likelihood):
    """Pixels as Bernoulli probabilities; the decoder emits logits. Needs x in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self._range_checked = False

    def check_range(self, x: Tensor) -> None:
        if not self._range_checked:  # once: the check costs a device sync
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 1:
                raise ValueError(
                    f"likelihood='bernoulli' needs data in [0, 1], got values in [{lo:.3g}, "
                    f"{hi:.3g}]; use likelihood='gaussian_fixed' or 'gaussian_learned' instead"
                )
            self._range_checked = True

    def nll(self, x: Tensor, out: Tensor) -> Tensor:
        self.check_range(x)
        return _sum_per_sample(F.binary_cross_entropy_with_logits(out, x, reduction="none"))

    def mean(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out)

    def variance(self, out: Tensor) -> Tensor:
        p = torch.sigmoid(out)
        return p * (1 - p)

    def cost(self, x: Tensor, out: Tensor) -> Tensor:
        """Keras' ``BinaryCrossentropy`` of the sigmoid's probabilities (the authors'), computed
        from the logits; Keras clips the probabilities to [1e-7, 1 - 1e-7], which changes
        nothing but saturated pixels."""
        self.check_range(x)
        return F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).mean(1)


class GaussianFixed(Likelihood):
    """N(x; mu, sigma^2 I) with a fixed sigma; the decoder emits mu.

    Args:
        sigma: The decoder's standard deviation. It sets the weight of reconstruction against the
            KL (a squared error scaled by 1 / (2 sigma^2)); 0.1 suits data in [0, 1], where
            sigma = 1 lets the KL win and blurs every sample.
    """

    def __init__(self, sigma: float = 0.1) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"decoder sigma must be > 0, got {sigma}")
        self.sigma = sigma

    def nll(self, x: Tensor, out: Tensor) -> Tensor:
        nll = 0.5 * ((x - out) / self.sigma) ** 2 + math.log(self.sigma) + 0.5 * _LOG_2PI
        return _sum_per_sample(nll)

    def mean(self, out: Tensor) -> Tensor:
        return out

    def variance(self, out: Tensor) -> Tensor:
        return out.new_full((), self.sigma**2)


class GaussianLearned(Likelihood):
    """N(x; mu, diag(sigma^2)) with a per-coordinate variance; the decoder emits mu and log sigma^2.

    The log-variance is bounded below softly at ``log(min_var)``: pixels that are constant in the
    data (MNIST's black border) would otherwise drive it to -inf and the NLL with it.
    """

    out_channels = 2

    def __init__(self, min_var: float = 1e-3) -> None:
        super().__init__()
        self.min_logvar = math.log(min_var)

    def split(self, out: Tensor) -> tuple[Tensor, Tensor]:
        mu, raw = out.chunk(2, dim=1)
        logvar = self.min_logvar + F.softplus(raw - self.min_logvar)
        return mu, logvar

    def nll(self, x: Tensor, out: Tensor) -> Tensor:
        mu, logvar = self.split(out)
        return _sum_per_sample(0.5 * (logvar + (x - mu) ** 2 * torch.exp(-logvar) + _LOG_2PI))

    def mean(self, out: Tensor) -> Tensor:
        return self.split(out)[0]

    def variance(self, out: Tensor) -> Tensor:
        return self.split(out)[1].exp()


class GaussianGamma(Likelihood):
    """N(x; mu, gamma I) with one learned scalar variance gamma; the decoder emits mu.

    Dai & Wipf 2019, eq. (3)-(4): with gamma trained jointly, the optimum drives gamma -> 0 on
    data that lie on a low-dimensional manifold, which sharpens reconstructions and leaves the
    surplus latent dimensions unused (their posterior collapses to the prior). That is what makes
    the aggregated posterior differ from N(0, I) and a second stage worth fitting. gamma is kept
    as ``raw`` (an ``nn.Parameter``, so the model's optimizer trains it) with gamma =
    softplus(raw) + ``min_gamma``; the paper leaves it unbounded, which float32 cannot afford.

    Args:
        init_gamma: gamma at initialisation (1.0 as in the authors' code).
        min_gamma: Soft lower bound of gamma.
    """

    def __init__(self, init_gamma: float = 1.0, min_gamma: float = 1e-6) -> None:
        super().__init__()
        if init_gamma <= min_gamma or min_gamma <= 0:
            raise ValueError(f"need init_gamma > min_gamma > 0, got {init_gamma}, {min_gamma}")
        self.min_gamma = min_gamma
        self.raw = nn.Parameter(torch.tensor(math.log(math.expm1(init_gamma - min_gamma))))

    @property
    def gamma(self) -> Tensor:
        """The current variance gamma, a scalar (trainable: it is softplus(raw) + min_gamma)."""
        return F.softplus(self.raw) + self.min_gamma

    def nll(self, x: Tensor, out: Tensor) -> Tensor:
        gamma = self.gamma
        return _sum_per_sample(0.5 * ((x - out) ** 2 / gamma + torch.log(gamma) + _LOG_2PI))

    def mean(self, out: Tensor) -> Tensor:
        return out

    def variance(self, out: Tensor) -> Tensor:
        return self.gamma


LIKELIHOODS: dict[str, type[Likelihood]] = {
    "bernoulli": Bernoulli,
    "gaussian_fixed": GaussianFixed,
    "gaussian_learned": GaussianLearned,
    "gaussian_gamma": GaussianGamma,
}


def make_likelihood(name: LikelihoodName, sigma: float = 0.1) -> Likelihood:
    """The likelihood called ``name``; ``sigma`` is used by ``gaussian_fixed`` only.

    ``gaussian_gamma`` carries a trainable parameter, so a model that uses it must keep the
    likelihood as a submodule (``self.likelihood = ...``) for its optimizer to see gamma.
    """
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}")
    return GaussianFixed(sigma) if name == "gaussian_fixed" else LIKELIHOODS[name]()


def adam_with_gamma(module: nn.Module, lr: float, gamma_lr: float) -> torch.optim.Adam:
    """Adam over ``module``'s parameters, with ``gamma_lr`` for its :class:`GaussianGamma` ones.

    gamma is one number on a log-like scale (softplus(raw) ~ exp(raw) for small gamma) and Adam
    moves a parameter by about its learning rate per step, so at a net's lr of 1e-3 gamma needs
    thousands of steps to fall from 1 to the data's squared error; its own, larger rate lets it
    track the reconstruction error within the first epoch. The gammas are found by type, so a
    module holding several (the 2-stage VAE) or naming them otherwise is handled alike.
    """
    gamma = [p for m in module.modules() if isinstance(m, GaussianGamma) for p in m.parameters()]
    ids = {id(p) for p in gamma}
    rest = [p for p in module.parameters() if id(p) not in ids]
    groups: list[dict[str, Any]] = [{"params": rest}, {"params": gamma, "lr": gamma_lr}]
    return torch.optim.Adam(groups, lr=lr)

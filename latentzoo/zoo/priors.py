"""Learnable priors p(z), trained with the model: ``MoG`` and ``VampPrior`` (``FlowPrior`` is in
:mod:`latentzoo.zoo.flow_prior`, ``StandardNormal`` in :mod:`latentzoo.zoo.densities`).

Tomczak, "Deep Generative Modeling" (2022), sec. 4.4.1: the ELBO's regularizer pulls every
q(z|x) toward p(z), and the prior that maximises the ELBO is the aggregated posterior
q(z) = 1/N sum_n q(z|x_n). N(0, I) leaves holes where it has mass and q has none; a learnable
prior can follow q. Each is a :class:`~latentzoo.zoo.densities.LatentDensity` with an exact
``log_prob``; none has a closed-form KL, so :meth:`LatentDensity.kl` takes the one-sample
Monte-Carlo estimate log q(z|x) - log p(z) at the reparameterised z the decoder sees.

A prior learns its shape from the model it is given to: the model calls ``bind`` in its
``__init__``, and the prior builds its parameters for the model's ``latent_dim`` (and, for the
VampPrior, ``data_shape`` and encoder). The user never repeats them::

    latentzoo fit --model VAE --model.prior MoG --model.prior.num_components 16
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentzoo.zoo.densities import (
    LatentDensity,
    build_density,
    kl_standard_normal,
    log_normal_diag,
    register_density,
)

if TYPE_CHECKING:
    from latentzoo.zoo.base import AutoencoderModule

__all__ = ["MoG", "Prior", "VampPrior", "build_density", "kl_standard_normal", "log_normal_diag"]

#: The name priors had before they and the fitted samplers became one concept.
Prior = LatentDensity


@register_density(name="mog")
class MoG(LatentDensity):
    """A mixture of K diagonal Gaussians with learnable means, log-variances and weights:

    p(z) = sum_k pi_k N(z; m_k, diag(exp(s_k))),  pi = softmax(logits).

    Initialised near N(0, I): means ~ N(0, ``init_scale``^2 I), unit variances, equal weights,
    so training starts from the standard VAE and the components spread out as q(z) asks.

    Args:
        num_components: K.
        init_scale: Standard deviation of the initial means.
    """

    means: nn.Parameter
    logvars: nn.Parameter
    logits: nn.Parameter

    def __init__(self, num_components: int = 16, init_scale: float = 0.5) -> None:
        super().__init__()
        if num_components < 1 or init_scale < 0:
            raise ValueError(
                f"MoG needs num_components >= 1 and init_scale >= 0, got {num_components}, "
                f"{init_scale}"
            )
        self.init_args = {"num_components": num_components, "init_scale": init_scale}
        self.num_components = num_components
        self.init_scale = init_scale

    def build(self, dim: int) -> None:
        k = self.num_components
        self.means = nn.Parameter(torch.randn(k, dim) * self.init_scale)  # (K, D)
        self.logvars = nn.Parameter(torch.zeros(k, dim))  # (K, D)
        self.logits = nn.Parameter(torch.zeros(k))  # (K,)

    def log_prob(self, z: Tensor) -> Tensor:
        self.check_bound()
        comp = log_normal_diag(z[:, None], self.means[None], self.logvars[None])  # (N, K)
        return torch.logsumexp(comp + torch.log_softmax(self.logits, 0), dim=1)

    def sample(self, n: int) -> Tensor:
        self.check_bound()
        k = torch.multinomial(torch.softmax(self.logits, 0), n, replacement=True)  # (n,)
        eps = torch.randn(n, self.latent_dim, device=self.means.device)
        return self.means[k] + eps * torch.exp(0.5 * self.logvars[k])


@contextmanager
def frozen_batch_norm(module: nn.Module) -> Iterator[None]:
    """Batch-norm layers of ``module`` in eval mode inside the block: they normalise by their
    running statistics and do not update them; the rest keeps its mode."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in norms]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(norms, modes, strict=True):
            m.train(mode)


@register_density(name="vamp")
class VampPrior(LatentDensity):
    """Tomczak & Welling 2018, "VAE with a VampPrior": the mixture of the model's own posteriors
    at K learnable pseudo-inputs u_k shaped like the data,

    p(z) = 1/K sum_k q(z | u_k).

    The pseudo-inputs are parameters of this module; the encoder is the model's, reached through
    the ``posterior`` method handed over by :meth:`bind` and not registered here, so the state
    dict holds the encoder's weights once. As in the authors' code (jmtomczak/vae_vampprior,
    ``models/Model.py``: ``Hardtanh(0, 1)`` on a learned linear map of one-hot inputs, the same
    family as free parameters), the encoder sees u_k clipped to the data's range, [0, 1] for
    images (``clip``). The authors' encoders have no batch norm; the zoo's conv encoders do, so
    the pseudo-inputs go through it with its batch-norm layers in eval mode (running statistics,
    never updated by them): the prior that trains is the prior that is evaluated, and the
    running statistics are the data's alone.

    Args:
        num_components: K (500, the authors' default and the paper's MNIST runs).
        init: ``data``: u_k are K random training inputs, drawn when ``fit`` starts, handed
            over by the model through :meth:`init_from_data` (an option of the authors' code,
            ``--use_training_data_init``, which also adds N(0, 0.01^2) noise); ``authors``:
            u_k ~ N(0.05, 0.01^2), their default for MNIST-like data; ``noise``: N(0.5, 0.1^2),
            grey images with a little noise.
        clip: The range u_k is clipped to before the encoder (hard tanh: no gradient outside):
            ``auto`` is [0, 1] for images (latentzoo's image data lie there) and no clipping
            for flat vectors (Synthetic's are unbounded); ``unit`` is [0, 1]; ``none`` off.
        seed: Seeds the choice of training inputs (the same on every DDP rank).
    """

    pseudo_inputs: nn.Parameter
    initialised: Tensor
    without_data = "or build it with init='noise' or init='authors'"

    def __init__(
        self,
        num_components: int = 500,
        init: Literal["data", "authors", "noise"] = "data",
        clip: Literal["auto", "unit", "none"] = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_components < 1:
            raise ValueError(f"VampPrior needs num_components >= 1, got {num_components}")
        if init not in ("data", "authors", "noise") or clip not in ("auto", "unit", "none"):
            raise ValueError(
                f"VampPrior's init must be 'data', 'authors' or 'noise' and its clip 'auto', "
                f"'unit' or 'none', got {init!r}, {clip!r}"
            )
        self.init_args = {"num_components": num_components, "init": init, "clip": clip,
                          "seed": seed}  # fmt: skip
        self.num_components, self.init, self.clip, self.seed = num_components, init, clip, seed

    def bind(self, model: AutoencoderModule) -> None:
        shape = (self.num_components, *model.data_shape)
        mean, std = (0.05, 0.01) if self.init == "authors" else (0.5, 0.1)
        self.pseudo_inputs = nn.Parameter(mean + std * torch.randn(shape))  # (K, *data_shape)
        self.register_buffer("initialised", torch.tensor(self.init != "data"))
        image = len(model.data_shape) == 3
        self.clip_range = (
            (0.0, 1.0) if self.clip == "unit" or (self.clip, image) == ("auto", True) else None
        )
        self.__dict__["_model"] = model  # not a submodule: no second copy of the encoder
        super().bind(model)

    def inputs(self) -> Tensor:
        """The pseudo-inputs as the encoder sees them, clipped to ``clip``'s range, (K, ...)."""
        if self.clip_range is None:
            return self.pseudo_inputs
        return F.hardtanh(self.pseudo_inputs, *self.clip_range)

    def components(self) -> tuple[Tensor, Tensor]:
        """Means and log-variances of q(z|u_k), each (K, D)."""
        self.check_bound()
        model = self.__dict__["_model"]
        with frozen_batch_norm(model):
            mu, logvar = model.posterior(self.inputs())
        if logvar is None:
            raise TypeError("VampPrior needs a stochastic encoder (posterior with a log-variance)")
        return mu, logvar

    def log_prob(self, z: Tensor) -> Tensor:
        mu, logvar = self.components()
        comp = log_normal_diag(z[:, None], mu[None], logvar[None])  # (N, K)
        return torch.logsumexp(comp, dim=1) - math.log(self.num_components)

    def sample(self, n: int) -> Tensor:
        mu, logvar = self.components()
        k = torch.randint(self.num_components, (n,), device=mu.device)
        return mu[k] + torch.randn_like(mu[k]) * torch.exp(0.5 * logvar[k])

    def data_request(self) -> tuple[int, int] | None:
        """K training inputs, unless initialised (no ``data`` init, a resumed run, a 2nd fit)."""
        return None if bool(self.initialised) else (self.num_components, self.seed)

    def init_from_data(self, x: Tensor) -> None:
        with torch.no_grad():
            self.pseudo_inputs.copy_(x)
            self.initialised.fill_(True)

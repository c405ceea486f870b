"""Priors p(z) for the VAEs of the zoo: ``StandardNormal``, ``MoG``, ``VampPrior``, ``FlowPrior``.

Tomczak, "Deep Generative Modeling" (2022), sec. 4.4.1: the ELBO's regularizer pulls every
q(z|x) toward p(z), and the prior that maximises the ELBO is the aggregated posterior
q(z) = 1/N sum_n q(z|x_n). N(0, I) leaves holes where it has mass and q has none; a learnable
prior can follow q. Every prior here has

- ``log_prob(z)``: (N, D) -> (N,), the exact log-density;
- ``sample(n)``: (n, D) on the prior's device;
- ``closed_form_kl(mu, logvar)``: KL(N(mu, diag e^logvar) || p) per row, or None where there is
  no closed form. :meth:`Prior.kl` then takes the one-sample Monte-Carlo estimate
  log q(z|x) - log p(z) at the reparameterised z the decoder sees.

A prior learns its shape from the model it is given to: the model calls :meth:`Prior.bind` once
its encoder exists, and the prior builds its parameters for the model's ``latent_dim`` (and, for
the VampPrior, ``data_shape`` and encoder). The user never repeats them::

    latentzoo fit --model VAE --model.prior MoG --model.prior.num_components 16

:class:`~latentzoo.zoo.flow_prior.FlowPrior` (a RealNVP flow) is in its own file.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from latentzoo.zoo.base import AutoencoderModule

__all__ = [
    "MoG",
    "Prior",
    "StandardNormal",
    "VampPrior",
    "build_prior",
    "kl_standard_normal",
    "log_normal_diag",
]

LOG_2PI = math.log(2 * math.pi)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample, (B, D) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension (broadcasting)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


class Prior(nn.Module):
    """A density p(z) over the latent space of the model it is bound to.

    Subclasses build their parameters in :meth:`bind` (the latent dimension is the model's) and
    record their constructor's arguments in ``self.init_args``, which the model saves among its
    hyper-parameters so a checkpoint re-creates the prior (:func:`build_prior`).
    """

    latent_dim: int
    _anchor: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.init_args: dict[str, Any] = {}
        self.latent_dim = 0  # 0: not bound yet
        # Tracks the module's device for parameter-free priors; not saved in the state dict.
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def bind(self, model: AutoencoderModule) -> None:
        """Size the prior for ``model``; called once by the model after it built its encoder."""
        if self.latent_dim and self.latent_dim != model.latent_dim:
            raise ValueError(
                f"this {type(self).__name__} is bound to a model with latent_dim="
                f"{self.latent_dim} already; give each model its own prior"
            )
        self.latent_dim = model.latent_dim

    def check_bound(self) -> None:
        if not self.latent_dim:
            raise RuntimeError(
                f"{type(self).__name__} is not bound to a model; pass it to a VAE as prior=..., "
                f"which calls prior.bind(model)"
            )

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z), (N, D) -> (N,)."""
        raise NotImplementedError(f"{type(self).__name__} must implement log_prob(z)")

    def sample(self, n: int) -> Tensor:
        """n draws of p, (n, D), on the prior's device."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample(n)")

    def closed_form_kl(self, mu: Tensor, logvar: Tensor) -> Tensor | None:
        """KL(N(mu, diag e^logvar) || p) per row, (B, D) -> (B,); None: no closed form."""
        return None

    def kl(self, mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """KL(q(z|x) || p) per row, (B,): closed form if any, else log q(z|x) - log p(z) at ``z``.

        ``z`` must be the reparameterised draw of q(z|x) the reconstruction used: the estimate
        is then unbiased, and its gradient is the usual single-sample ELBO gradient.
        """
        closed = self.closed_form_kl(mu, logvar)
        if closed is not None:
            return closed
        return log_normal_diag(z, mu, logvar) - self.log_prob(z)

    def on_fit_start(self, model: AutoencoderModule) -> None:
        """Called by the model at the start of ``fit`` (after a resumed run's weights load)."""

    def config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: what :func:`build_prior` re-creates it from."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": self.init_args}


class StandardNormal(Prior):
    """p(z) = N(0, I): the VAE's prior (Kingma & Welling 2014), with the closed-form KL

    KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1).
    """

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (z.pow(2) + LOG_2PI).sum(1)

    def sample(self, n: int) -> Tensor:
        self.check_bound()
        return torch.randn(n, self.latent_dim, device=self.device)

    def closed_form_kl(self, mu: Tensor, logvar: Tensor) -> Tensor:
        return kl_standard_normal(mu, logvar)


class MoG(Prior):
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

    def bind(self, model: AutoencoderModule) -> None:
        super().bind(model)
        k, d = self.num_components, self.latent_dim
        self.means = nn.Parameter(torch.randn(k, d) * self.init_scale)  # (K, D)
        self.logvars = nn.Parameter(torch.zeros(k, d))  # (K, D)
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


class VampPrior(Prior):
    """Tomczak & Welling 2018, "VAE with a VampPrior": the mixture of the model's own posteriors
    at K learnable pseudo-inputs u_k shaped like the data,

    p(z) = 1/K sum_k q(z | u_k).

    The pseudo-inputs are parameters of this module; the encoder is the model's, reached through
    the ``posterior`` method handed over by :meth:`bind` and not registered here, so the state
    dict holds the encoder's weights once. The paper produces u_k by a learned linear layer with
    hard-tanh from one-hot inputs; here u_k are the parameters themselves (the same family,
    without the clipping to the data range). The pseudo-inputs go through the encoder as one
    batch of their own (in training mode, batch norm normalises them by their own statistics).

    Args:
        num_components: K (500 in the paper's MNIST runs).
        init: ``data``: u_k are K random training inputs, drawn when ``fit`` starts (the paper's
            choice); ``noise``: u_k ~ N(0.5, 0.1^2), grey images with a little noise.
        seed: Seeds the choice of training inputs (the same on every DDP rank).
    """

    pseudo_inputs: nn.Parameter
    initialised: Tensor

    def __init__(
        self, num_components: int = 500, init: Literal["data", "noise"] = "data", seed: int = 0
    ) -> None:
        super().__init__()
        if num_components < 1:
            raise ValueError(f"VampPrior needs num_components >= 1, got {num_components}")
        if init not in ("data", "noise"):
            raise ValueError(f"VampPrior's init must be 'data' or 'noise', got {init!r}")
        self.init_args = {"num_components": num_components, "init": init, "seed": seed}
        self.num_components, self.init, self.seed = num_components, init, seed

    def bind(self, model: AutoencoderModule) -> None:
        super().bind(model)
        shape = (self.num_components, *model.data_shape)
        self.pseudo_inputs = nn.Parameter(0.5 + 0.1 * torch.randn(shape))  # (K, *data_shape)
        self.register_buffer("initialised", torch.tensor(self.init == "noise"))
        self.__dict__["_posterior"] = model.posterior  # a method: no second copy of the encoder

    def components(self) -> tuple[Tensor, Tensor]:
        """Means and log-variances of q(z|u_k), each (K, D)."""
        self.check_bound()
        mu, logvar = self.__dict__["_posterior"](self.pseudo_inputs)
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

    def on_fit_start(self, model: AutoencoderModule) -> None:
        if bool(self.initialised):  # noise, a resumed run, or a second fit
            return
        x = training_inputs(model, self.num_components, self.seed)
        with torch.no_grad():
            self.pseudo_inputs.copy_(x)
            self.initialised.fill_(True)


def training_inputs(model: AutoencoderModule, n: int, seed: int) -> Tensor:
    """n random training inputs of the model's fit, as the model sees them, (n, *data_shape);
    drawn with replacement when the training set is smaller."""
    from latentzoo.datamodules.base import to_model_input

    dm = getattr(model.trainer, "datamodule", None)
    data = getattr(getattr(dm, "train_set", None), "x", None)
    if not isinstance(data, Tensor):
        raise RuntimeError(
            "VampPrior(init='data') draws its pseudo-inputs from the datamodule's train_set; "
            "fit with a latentzoo datamodule, or use init='noise'"
        )
    gen = torch.Generator().manual_seed(seed)
    if len(data) >= n:
        idx = torch.randperm(len(data), generator=gen)[:n]
    else:
        idx = torch.randint(len(data), (n,), generator=gen)
    return to_model_input(data[idx].to(model.device))


def build_prior(prior: object) -> Prior:
    """The prior a model was given: a :class:`Prior`, None (N(0, I)), or a saved ``config()``.

    A config's class is looked up among the imported modules (as :mod:`latentzoo.loading` does
    for models: opening a checkpoint imports nothing it names) and must subclass :class:`Prior`.
    """
    if prior is None:
        return StandardNormal()
    if isinstance(prior, Prior):
        return prior
    if isinstance(prior, Mapping) and "class_path" in prior:
        class_path = str(prior["class_path"])
        module_name, _, name = class_path.rpartition(".")
        cls = getattr(sys.modules.get(module_name), name, None)
        if not (isinstance(cls, type) and issubclass(cls, Prior)):
            raise ValueError(
                f"prior class {class_path} is not a latentzoo Prior of an imported module; "
                f"import the module that defines it first"
            )
        return cls(**dict(prior.get("init_args") or {}))
    raise TypeError(
        f"prior must be a latentzoo.zoo.priors.Prior, None or a saved prior config, got "
        f"{type(prior).__name__}"
    )

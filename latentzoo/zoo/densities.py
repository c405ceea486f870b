"""Latent densities: the one concept behind every "where do the codes come from".

A :class:`LatentDensity` is a density over a model's latent space with

- ``log_prob(z)``: (N, D) -> (N,), the log-density (exact, or an estimate where the class says);
- ``sample(n)``: (n, D) on the density's device;
- ``fit(mu, logvar)`` (optional): fit it to a trained model's posterior means (and log-variances).

Two kinds share it. *Priors* are trained with the model: every zoo model takes one as ``prior``
(the KL target of the VAEs, the critic's target of WAE-GP and LMGAE); ``StandardNormal``,
``MoG``, ``VampPrior``, ``FlowPrior``. *Fitted samplers* are fitted to the codes after training
(Ghosh et al. 2020's ``GaussianMixture``, Dai & Wipf 2019's ``SecondStage``) and only generate.
``model.sample`` draws from the model's generative prior, or from a sampler attached with
``set_latent_sampler``; :class:`~latentzoo.callbacks.LatentSampler` fits one by name.

Every density is registered (:data:`DENSITIES`), so ``--model.prior MoG``, a suite's
``samplers: [prior, gmm]`` and ``latentzoo evaluate --sampler gmm`` find it, plugins included
(entry-point group ``latentzoo.densities``). A density learns its dimension from the model it
is bound to (:meth:`LatentDensity.bind`); a fitted sampler may also be sized by hand
(``GaussianMixture(16)``). Its constructor's arguments are recorded in ``init_args``, which a
model saves among its hyper-parameters, so a checkpoint re-creates its prior
(:func:`build_density`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from latentzoo.registry import Registry, RegistryError, qualname, subclass_check

if TYPE_CHECKING:
    from latentzoo.zoo.base import AutoencoderModule

__all__ = [
    "DENSITIES",
    "LOG_2PI",
    "LatentDensity",
    "StandardNormal",
    "build_density",
    "create_density",
    "kl_standard_normal",
    "list_densities",
    "log_normal_diag",
    "register_density",
]

LOG_2PI = math.log(2 * math.pi)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample, (B, D) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension (broadcasting)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


class LatentDensity(nn.Module):
    """A density p(z) over the latent space of the model it is bound to.

    Subclasses create their parameters in :meth:`build` (called once the dimension is known),
    record their constructor's arguments in ``self.init_args`` (what :func:`build_density`
    re-creates them from), and implement :meth:`log_prob` and :meth:`sample`; a fitted sampler
    also implements :meth:`fit`. A density that needs training inputs at the start of ``fit``
    (the VampPrior's pseudo-inputs) says how many in :meth:`data_request` and receives them in
    :meth:`init_from_data`.

    Args:
        dim: The latent dimension, when the density is used without a model (0: set by
            :meth:`bind`).
    """

    latent_dim: int
    _anchor: Tensor
    #: What to do instead, said when :meth:`data_request` cannot be met (no datamodule).
    without_data: ClassVar[str] = ""

    def __init__(self, dim: int = 0) -> None:
        super().__init__()
        if dim < 0:
            raise ValueError(f"the code dimension must be >= 1, got {dim}")
        self.init_args: dict[str, Any] = {}
        self.latent_dim = 0  # 0: not bound yet
        # Tracks the module's device for parameter-free densities; not in the state dict.
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)
        self._dim = dim  # bound by the subclass's __init__ once its own attributes exist

    def _bind_given_dim(self) -> None:
        """For subclasses: call at the end of ``__init__``; binds a ``dim`` given there."""
        if self._dim:
            self.bind_dim(self._dim)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dim(self) -> int:
        """The code dimension (0 until bound)."""
        return self.latent_dim

    def bind(self, model: AutoencoderModule) -> None:
        """Size the density for ``model``; called once by the model in its ``__init__``."""
        self.bind_dim(model.latent_dim)

    def bind_dim(self, dim: int) -> None:
        """Size the density for codes of ``dim`` coordinates (creates its parameters)."""
        if self.latent_dim and self.latent_dim != dim:
            raise ValueError(
                f"this {type(self).__name__} is bound to codes of dimension {self.latent_dim} "
                f"already, not {dim}; give each model its own prior"
            )
        if not self.latent_dim:
            self.latent_dim = dim
            self.build(dim)

    def build(self, dim: int) -> None:
        """Create the parameters and buffers for codes of ``dim`` coordinates (none here)."""

    def check_bound(self) -> None:
        if not self.latent_dim:
            raise RuntimeError(
                f"{type(self).__name__} is not bound to a model; pass it to a model as prior=..., "
                f"which calls density.bind(model), or give its dim"
            )

    # -- the density --------------------------------------------------------------------------
    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z), (N, D) -> (N,)."""
        raise NotImplementedError(f"{type(self).__name__} must implement log_prob(z)")

    def sample(self, n: int) -> Tensor:
        """n draws, (n, D), on the density's device."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample(n)")

    def fit(self, mu: Tensor, logvar: Tensor | None = None) -> None:
        """Fit to posterior means ``mu`` (N, D) and, for stochastic encoders, log-variances."""
        raise NotImplementedError(
            f"{type(self).__name__} is a prior trained with its model; it has no fit()"
        )

    @classmethod
    def fittable(cls) -> bool:
        """Whether the class can serve as a fitted sampler (it implements :meth:`fit`)."""
        return cls.fit is not LatentDensity.fit

    def check_codes(self, mu: Tensor, min_n: int) -> None:
        """Fail on codes that cannot be fitted, with their shape and what is needed."""
        self.check_bound()
        if mu.ndim != 2 or mu.shape[1] != self.latent_dim or len(mu) < min_n:
            raise ValueError(
                f"{type(self).__name__} needs (N >= {min_n}, {self.latent_dim}) codes to fit, got "
                f"shape {tuple(mu.shape)}; encode more training data"
            )

    # -- as a prior -----------------------------------------------------------------------------
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

    def data_request(self) -> tuple[int, int] | None:
        """``(n, seed)``: n training inputs :meth:`init_from_data` wants at the start of ``fit``,
        drawn with ``seed``; None (the default): none. The model asks its datamodule for them
        (:meth:`latentzoo.datamodules.InMemoryDataModule.sample_inputs`)."""
        return None

    def init_from_data(self, x: Tensor) -> None:
        """Receive the training inputs asked for by :meth:`data_request`, (n, *data_shape)."""

    def config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: what :func:`build_density` re-creates it from."""
        return {"class_path": qualname(type(self)), "init_args": dict(self.init_args)}


DENSITIES: Registry[type[LatentDensity]] = Registry(
    "latent density",
    "latentzoo.densities",
    subclass_check(lambda: LatentDensity, "latentzoo Prior or sampler"),
)
register_density = DENSITIES.register


def list_densities(pattern: str = "*") -> list[str]:
    """Registered density names matching ``pattern`` (priors and fitted samplers)."""
    return DENSITIES.list(pattern)


def create_density(name: str, **kwargs: Any) -> LatentDensity:
    """The density registered under ``name`` (or a class path), built with ``kwargs``."""
    return DENSITIES.resolve(name)(**kwargs)


@register_density(name="normal")
class StandardNormal(LatentDensity):
    """p(z) = N(0, I): the VAE's prior (Kingma & Welling 2014), with the closed-form KL

    KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1);

    as a sampler, N(0, I) whatever the model's own prior: the baseline others are measured by.

    Args:
        dim: See :class:`LatentDensity`.
    """

    def __init__(self, dim: int = 0) -> None:
        super().__init__(dim)
        self._bind_given_dim()

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (z.pow(2) + LOG_2PI).sum(1)

    def sample(self, n: int) -> Tensor:
        self.check_bound()
        return torch.randn(n, self.latent_dim, device=self.device)

    def fit(self, mu: Tensor, logvar: Tensor | None = None) -> None:
        """Nothing to fit."""

    def closed_form_kl(self, mu: Tensor, logvar: Tensor) -> Tensor:
        return kl_standard_normal(mu, logvar)


def build_density(density: object) -> LatentDensity:
    """The density a model was given: a :class:`LatentDensity`, None (N(0, I)), a registered
    name, or a saved ``config()``.

    A config's class is resolved by :meth:`latentzoo.registry.Registry.resolve` among registered
    densities and imported modules (opening a checkpoint imports nothing it names).
    """
    if density is None:
        return StandardNormal()
    if isinstance(density, LatentDensity):
        return density
    if isinstance(density, str):
        density = {"class_path": density}
    if isinstance(density, Mapping) and "class_path" in density:
        try:
            cls = DENSITIES.resolve(str(density["class_path"]))
        except RegistryError as err:
            raise ValueError(f"prior: {err}") from None
        return cls(**dict(density.get("init_args") or {}))
    raise TypeError(
        f"prior must be a latentzoo LatentDensity, None, a registered name or a saved config, "
        f"got {type(density).__name__}"
    )

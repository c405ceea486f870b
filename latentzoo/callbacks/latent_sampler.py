"""``LatentSampler``: choose where a trained model's samples come from, without retraining it.

Attaches a latent density (:mod:`latentzoo.zoo.densities`) to the model, so that ``sample(n)``
decodes codes drawn from it instead of from the prior; every callback that calls ``sample`` (FID,
sample grids) then measures that sampler. ``kind`` is ``prior`` or the name of a registered
density that fits itself to codes (:func:`latentzoo.zoo.list_densities`, plugins included):

- ``prior``: the model's own generative prior (the second stage for :class:`TwoStageVAE`).
- ``normal``: N(0, I) whatever the model's prior, the baseline for comparisons.
- ``gmm``: Ghosh et al. 2020's ex-post density estimation, a Gaussian mixture fitted by EM to the
  posterior means of the training set.
- ``two_stage``: Dai & Wipf 2019's second-stage VAE, trained on the training codes.

The sampler is fitted when training ends and at the start of ``validate``/``test``/``predict``
(from the command line: ``latentzoo test --ckpt_path ... --trainer.callbacks+=LatentSampler
--trainer.callbacks.kind=gmm``), once per trained state: it is refitted only when the model's
weights differ from the ones it was fitted to (a digest of the model's ``state_dict``, so
``test(ckpt_path=<an older checkpoint>)`` refits even in the trainer that did the ``fit``). Its
fitted state is part of the callback's checkpoint state, so a checkpoint saved after fitting
restores it without refitting.

Under DDP the sampler is fitted on rank 0, on the whole training set (not rank 0's shard), and
its state is broadcast to the other ranks, so every rank samples from the same density. Rank 0's
digest decides for every rank (batch-norm statistics differ between ranks). The fit at the end of
training runs in ``on_train_end``, before the strategy's teardown, while the model is still on its
training device and the process group is up.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor
from tqdm.auto import tqdm
from typing_extensions import override

from latentzoo.registry import RegistryError
from latentzoo.zoo.base import AutoencoderModule
from latentzoo.zoo.densities import DENSITIES, LatentDensity

__all__ = ["PRIOR", "LatentSampler", "check_sampler_name", "sampler_names", "weights_digest"]

PRIOR = "prior"  # the model's own generative prior: nothing to fit


def sampler_names() -> list[str]:
    """``prior`` and the registered densities that can be fitted to codes, in registration
    order (the built-ins: normal, gmm, two_stage)."""
    return [PRIOR, *(n for n in DENSITIES.names() if DENSITIES.get(n).fittable())]


def check_sampler_name(kind: str) -> str:
    """``kind`` if it names the prior or a registered density that can be fitted to codes;
    else a ValueError naming the ones that can."""
    if kind == PRIOR:
        return kind
    fittable = sampler_names()
    try:
        cls = DENSITIES.resolve(kind)
    except RegistryError:
        raise ValueError(
            f"sampler kind {kind!r} is unknown; samplers: {', '.join(fittable)}"
        ) from None
    if not cls.fittable():
        raise ValueError(
            f"sampler kind {kind!r} is a prior trained with its model (it has no fit()); "
            f"samplers: {', '.join(fittable)}"
        )
    return kind


def weights_digest(module: torch.nn.Module) -> str:
    """A SHA-1 of every parameter and buffer of ``module``: names, dtypes, shapes and values.

    Costs one copy of the weights to the CPU; the sampler takes it once per evaluation.
    """
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)  # 1-d: ``view`` takes no 0-d tensor
        digest.update(f"{name}{t.dtype}{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class LatentSampler(Callback):
    """Fit a latent density to the training codes and make the model's ``sample`` use it.

    The density is built as ``create_density(kind, **options)``; the shortcuts below are the
    built-in samplers' usual settings, passed to any density whose constructor takes an argument
    of that name (``seed`` too).

    Args:
        kind: ``prior`` or a registered fittable density; see the module's docstring.
        n_components: Mixture components, for ``gmm`` (10 in Ghosh et al.).
        covariance: ``full`` or ``diag`` covariances, for ``gmm``.
        stage2_epochs: Epochs over the codes, for ``two_stage`` (its ``epochs``).
        stage2_width: Width of the ``two_stage`` sampler's MLPs (its ``width``).
        options: Further constructor arguments of the density.
        max_codes: Most training samples encoded for fitting.
        seed: Seed of the sampler's initialisation.
    """

    def __init__(
        self,
        kind: str = "gmm",
        n_components: int = 10,
        covariance: Literal["full", "diag"] = "full",
        stage2_epochs: int = 20,
        stage2_width: int = 64,
        options: dict[str, Any] | None = None,
        max_codes: int = 60_000,
        seed: int = 0,
    ) -> None:
        check_sampler_name(kind)
        if max_codes < max(2, n_components):
            raise ValueError(f"max_codes={max_codes} is too few codes to fit a sampler to")
        self.kind = kind
        shortcuts = {"n_components": n_components, "covariance": covariance,
                     "epochs": stage2_epochs, "width": stage2_width, "seed": seed}  # fmt: skip
        self.options = {**self._accepted(shortcuts), **(options or {})}
        self.max_codes, self.seed = max_codes, seed
        self.sampler: LatentDensity | None = None
        self.fitted_key: str | None = None
        self._restored: dict[str, Any] | None = None

    @property
    @override
    def state_key(self) -> str:
        return f"LatentSampler[{self.kind}]"

    def _accepted(self, shortcuts: dict[str, Any]) -> dict[str, Any]:
        """The shortcut arguments the density's constructor takes."""
        if self.kind == PRIOR:
            return {}
        params = inspect.signature(DENSITIES.resolve(self.kind)).parameters
        return {k: v for k, v in shortcuts.items() if k in params}

    def build(self, latent_dim: int) -> LatentDensity | None:
        """An unfitted sampler of this kind for codes of ``latent_dim``; None for ``prior``."""
        if self.kind == PRIOR:
            return None
        density = DENSITIES.resolve(self.kind)(**self.options)
        density.bind_dim(latent_dim)
        return density

    # -- hooks --------------------------------------------------------------------------------
    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.attach(trainer, pl_module)

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # not the validation loops inside fit
            self.attach(trainer, pl_module)

    @override
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.attach(trainer, pl_module)

    @override
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.attach(trainer, pl_module)

    @override
    def state_dict(self) -> dict[str, Any]:
        if self.sampler is None:
            return {}
        return {"kind": self.kind, "key": self.fitted_key, "state": self.sampler.state_dict()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("kind") == self.kind:
            self._restored = state_dict

    # -- fitting ------------------------------------------------------------------------------
    def attach(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Fit (or restore) the sampler for the model's current state and attach it."""
        if not isinstance(pl_module, AutoencoderModule):
            raise TypeError(
                f"LatentSampler needs a latentzoo model, got {type(pl_module).__name__}"
            )
        key = weights_digest(pl_module) if trainer.is_global_zero else None
        key = trainer.strategy.broadcast(key, src=0)  # every rank calls this
        if self.sampler is None or self.fitted_key != key:
            # validate/test/predict run under inference mode, where nothing could be trained.
            with torch.inference_mode(False), torch.enable_grad():
                self.sampler = self._fit_or_restore(trainer, pl_module, key)
            self.fitted_key = key
        pl_module.set_latent_sampler(self.sampler)

    def _fit_or_restore(
        self, trainer: L.Trainer, pl_module: AutoencoderModule, key: str | None
    ) -> LatentDensity | None:
        sampler = self.build(pl_module.latent_dim)
        if sampler is None:
            return None
        restored = self._restored
        if restored is not None and restored.get("key") == key:
            state = restored["state"]
        else:
            state = None
            if trainer.is_global_zero:
                sampler.to(pl_module.device)
                sampler.fit(*self.training_codes(trainer, pl_module))
                state = {k: v.cpu() for k, v in sampler.state_dict().items()}
            state = trainer.strategy.broadcast(state, src=0)  # every rank calls this
        sampler.load_state_dict(state)
        return sampler.to(pl_module.device).eval()

    @torch.no_grad()
    def training_codes(
        self, trainer: L.Trainer, pl_module: AutoencoderModule
    ) -> tuple[Tensor, Tensor | None]:
        """Posterior means (N, latent_dim) and log-variances (or None) of the training set."""
        dm = getattr(trainer, "datamodule", None)
        if dm is None:
            raise RuntimeError(
                "LatentSampler fits its sampler to the training set, so the trainer needs a "
                "datamodule: pass datamodule=... to fit/validate/test/predict"
            )
        if getattr(dm, "train_set", None) is None:
            dm.setup("fit")  # ``test`` sets up the test split only
        was_training = pl_module.training
        pl_module.eval()
        mus: list[Tensor] = []
        logvars: list[Tensor] = []
        n = 0
        for batch in tqdm(dm.train_dataloader(), desc="encoding for the sampler", leave=False):
            batch = dm.transfer_batch_to_device(batch, pl_module.device, 0)
            mu, logvar = pl_module.posterior(dm.on_after_batch_transfer(batch, 0)[0])
            mus.append(mu)
            if logvar is not None:
                logvars.append(logvar)
            n += len(mu)
            if n >= self.max_codes:
                break
        pl_module.train(was_training)
        mu_all = torch.cat(mus)[: self.max_codes]
        return mu_all, torch.cat(logvars)[: self.max_codes] if logvars else None

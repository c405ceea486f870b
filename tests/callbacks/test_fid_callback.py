"""FIDCallback: value equals a direct computation, the real-statistics cache is reused."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from latentzoo.callbacks import FIDCallback
from latentzoo.callbacks import fid as fid_module
from latentzoo.callbacks.batches import generated_batches
from latentzoo.callbacks.fid import default_count, inception_cost_message
from latentzoo.datamodules import Synthetic
from latentzoo.metrics.frechet import frechet_distance_between
from latentzoo.metrics.precision_recall import precision_recall
from latentzoo.zoo import VAE


def make_trainer(callback: FIDCallback) -> L.Trainer:
    return L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )


def synthetic() -> Synthetic:
    return Synthetic(latent_dim=2, data_dim=6, num_train=400, num_test=100, val_size=100)


def test_pixel_fid_equals_direct_computation_and_cache_is_reused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, dm = VAE(data_shape=(6,), latent_dim=2, width=4), synthetic()
    kwargs = dict(
        extractor="pixels",
        num_samples=120,
        num_real=250,
        batch_size=50,
        kid_subset_size=50,
        cache_dir=str(tmp_path),
    )
    first = FIDCallback(**kwargs)
    make_trainer(first).test(model, dm, verbose=False)
    assert first.real_computations == 1 and len(list(tmp_path.glob("*.pt"))) == 1

    fake = torch.cat(list(generated_batches(model, 120, 50, seed=0, clamp=False)))
    real = dm.train_set.x[:250]
    expected = float(frechet_distance_between(real, fake))
    second = FIDCallback(**kwargs)  # a new run: reads the file, extracts no real features
    trainer = make_trainer(second)
    trainer.test(model, dm, verbose=False)
    assert second.real_computations == 0
    assert float(trainer.callback_metrics["test/fid"]) == pytest.approx(expected, rel=1e-4)
    assert {"test/kid", "test/kid_std", "test/fid_recon"} <= set(trainer.callback_metrics)
    trainer.test(model, dm, verbose=False)  # same run again: nothing recomputed, same samples
    assert second.real_computations == 0
    assert float(trainer.callback_metrics["test/fid"]) == pytest.approx(expected, rel=1e-4)


def test_another_real_split_is_another_cache_entry(tmp_path: Path) -> None:
    model, dm = VAE(data_shape=(6,), latent_dim=2, width=4), synthetic()
    for split in ("train", "val"):
        cb = FIDCallback(
            extractor="pixels",
            num_samples=60,
            num_real=60,
            real_split=split,
            kid=False,
            reconstruction=False,
            cache_dir=str(tmp_path),
        )
        make_trainer(cb).test(model, dm, verbose=False)
        assert cb.real_computations == 1
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_domain_extractor_needs_an_evaluator() -> None:
    cb = FIDCallback(extractor="domain")
    with pytest.raises(ValueError, match="needs evaluator="):
        make_trainer(cb).test(VAE(data_shape=(6,), latent_dim=2), synthetic(), verbose=False)


@pytest.mark.slow
def test_inception_fid_end_to_end(
    random_inception_weights: Path, tiny_images, tmp_path: Path
) -> None:
    model = VAE(data_shape=(1, 28, 28), latent_dim=2, width=4)
    cb = FIDCallback(
        inception_weights=str(random_inception_weights),
        num_samples=4,
        num_real=4,
        kid=False,
        reconstruction=False,
        batch_size=4,
        cache_dir=str(tmp_path),
    )
    trainer = make_trainer(cb)
    trainer.test(model, tiny_images, verbose=False)
    assert float(trainer.callback_metrics["test/fid"]) > 0
    assert cb.extractor is not None and cb.extractor.source.startswith("inception:file")


def test_without_a_datamodule_the_error_says_what_to_pass(tmp_path: Path) -> None:
    model = VAE(data_shape=(8,), latent_dim=2, width=4)
    loader = DataLoader(TensorDataset(torch.randn(16, 8), torch.zeros(16)), batch_size=8)
    trainer = make_trainer(FIDCallback(extractor="pixels", num_samples=16, num_real=16,
                                       cache_dir=str(tmp_path)))  # fmt: skip
    with pytest.raises(TypeError, match="latentzoo datamodule"):
        trainer.test(model, loader, verbose=False)


def test_inception_cost_message_extrapolates_the_measured_rate() -> None:
    message = inception_cost_message(10.0, {"real": 600, "samples": 1_200}, world_size=2)
    assert "~10 images/s measured, 600 real + 1,200 samples: about 1.5 min" in message
    assert "num_samples" in message and "extractor=domain" in message  # what makes it cheaper


@pytest.mark.slow  # an Inception-sized CPU extraction, about 11 s
def test_inception_on_cpu_says_once_how_long_it_will_take(
    random_inception_weights: Path, tiny_images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    monkeypatch.setattr(fid_module, "rank_zero_info", said.append)
    cb = FIDCallback(inception_weights=str(random_inception_weights), num_samples=2, num_real=2,
                     kid=False, batch_size=2, cache_dir=str(tmp_path))  # fmt: skip
    trainer = make_trainer(cb)
    for _ in range(2):
        trainer.test(VAE(data_shape=(1, 28, 28), latent_dim=2, width=4), tiny_images)
    costs = [m for m in said if "Inception on CPU" in m]
    assert len(costs) == 1  # once per callback, not per evaluation
    assert "2 real + 2 samples + 2 reconstructions: about" in costs[0]


class NearDataVAE(VAE):
    """Samples training points plus noise, so precision and recall are neither 0 nor 1."""

    def __init__(self, points: torch.Tensor) -> None:
        super().__init__(data_shape=(6,), latent_dim=2, width=4)
        self.points = points  # (N, 6)

    def sample(self, n: int) -> torch.Tensor:
        pick = torch.randint(len(self.points), (n,))
        return self.points[pick] + 0.3 * torch.randn(n, 6)


@pytest.mark.parametrize("kid", [True, False])  # real features kept by KID, or by PR alone
def test_precision_recall_from_the_fid_features_and_from_the_cache(
    tmp_path: Path, kid: bool
) -> None:
    dm = synthetic()
    dm.setup("fit")
    model = NearDataVAE(dm.train_set.x)
    kwargs = dict(
        extractor="pixels",
        num_samples=120,
        num_real=250,
        batch_size=50,
        kid=kid,
        kid_subset_size=50,
        reconstruction=False,
        cache_dir=str(tmp_path),
    )
    fake = torch.cat(list(generated_batches(model, 120, 50, seed=0, clamp=False)))  # (120, 6)
    precision, recall = precision_recall(dm.train_set.x[:250], fake)
    assert 0 < float(precision) < 1 and 0 < float(recall) < 1
    for computations in (1, 0):  # extracted, then read from the cache by a new callback
        callback = FIDCallback(**kwargs)
        trainer = make_trainer(callback)
        trainer.test(model, dm, verbose=False)
        assert callback.real_computations == computations
        logged = trainer.callback_metrics  # float32; 1/120 or 1/250 per sample
        assert float(logged["test/precision"]) == pytest.approx(float(precision), abs=1e-6)
        assert float(logged["test/recall"]) == pytest.approx(float(recall), abs=1e-6)


def test_unset_counts_are_the_full_protocol_but_for_inception_on_a_cpu(tmp_path: Path) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert default_count(cpu, "inception") == 1_000  # 10,000 Inception features: > 10 min
    assert default_count(cuda, "inception") == default_count(cpu, "domain") == 10_000
    model, dm = VAE(data_shape=(6,), latent_dim=2, width=4), synthetic()
    cb = FIDCallback(extractor="pixels", batch_size=1000, cache_dir=str(tmp_path))
    trainer = make_trainer(cb)
    trainer.test(model, dm, verbose=False)
    assert (cb.num_samples, cb.num_real) == (10_000, 10_000)
    assert "test/fd_inf" not in trainer.callback_metrics  # only below 10,000
    for samples, fd_inf in ((120, True), (10_000, False)):  # beside FID wherever N < 10,000
        explicit = FIDCallback(extractor="pixels", num_samples=samples, num_real=samples,
                               batch_size=1000, cache_dir=str(tmp_path))  # fmt: skip
        trainer = make_trainer(explicit)
        trainer.test(model, dm, verbose=False)
        assert ("test/fd_inf" in trainer.callback_metrics) is fd_inf
        assert explicit.num_samples == samples
    for kwargs in ({"kid": False}, {"metrics": ["fid"]}):  # not only with the default metrics
        cb = FIDCallback(extractor="pixels", num_samples=500, **kwargs)  # type: ignore[arg-type]
        cb._resolve_counts(torch.device("cpu"))
        assert "fd_infinity" in cb.metrics.names

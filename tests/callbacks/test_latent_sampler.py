"""LatentSampler: attaches after fit and at test time, through ``decode``, and checkpoints."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from testutils import BlobImages, trainer

from latentzoo.callbacks import LatentSampler
from latentzoo.zoo import VAE, TwoStageVAE
from latentzoo.zoo.samplers import GaussianMixture, SecondStage, StandardNormal


def fitted_vae() -> tuple[VAE, BlobImages]:
    model, dm = VAE(latent_dim=3, width=8), BlobImages()
    trainer(max_epochs=1, limit_train_batches=2).fit(model, dm)
    return model, dm


def test_gmm_is_fitted_on_training_codes_after_fit_and_used_by_sample() -> None:
    model, dm = VAE(latent_dim=3, width=8), BlobImages()
    cb = LatentSampler(kind="gmm", n_components=2)
    trainer(max_epochs=1, limit_train_batches=2, callbacks=[cb]).fit(model, dm)
    sampler = model.latent_sampler
    assert isinstance(sampler, GaussianMixture)
    codes = model.eval().encode(dm.on_after_batch_transfer(dm.train_set[:], 0)[0]).detach()
    mean_gap = (sampler.means.T @ sampler.weights).float() - codes.mean(0)
    assert mean_gap.abs().max() < 1e-3  # the mixture's mean is the codes' mean (EM's M step)
    decoded = []
    model.decode = lambda z: decoded.append(z) or z  # type: ignore[method-assign]
    torch.manual_seed(5)
    model.sample(4)
    torch.manual_seed(5)
    assert torch.equal(decoded[0], sampler.sample(4))  # sample = decode(sampler draws)


def test_sampler_is_fitted_before_the_strategy_tears_down() -> None:
    # Teardown moves the model off its device (and DDP's process group may go): fit before it.
    model, dm = VAE(latent_dim=3, width=8), BlobImages()
    t = trainer(max_epochs=1, limit_train_batches=1, callbacks=[LatentSampler(n_components=2)])
    at_teardown = []
    teardown = t.strategy.teardown
    t.strategy.teardown = lambda: at_teardown.append(model.latent_sampler) or teardown()  # type: ignore[method-assign]
    t.fit(model, dm)
    assert isinstance(at_teardown[0], GaussianMixture)


def test_an_older_checkpoint_tested_by_the_fitting_trainer_gets_its_own_fit(tmp_path) -> None:
    model, dm = VAE(latent_dim=3, width=8), BlobImages()
    cb = LatentSampler(kind="gmm", n_components=2)
    every_epoch = ModelCheckpoint(tmp_path, save_top_k=-1, every_n_epochs=1)
    t = trainer(
        max_epochs=2,
        limit_train_batches=2,
        callbacks=[cb, every_epoch],
        enable_checkpointing=True,
    )
    t.fit(model, dm)
    final = cb.sampler.means.clone()  # type: ignore[union-attr]
    older = sorted(tmp_path.glob("epoch=0*.ckpt"))[0]
    t.test(model, dm, ckpt_path=older)  # same trainer, same global_step, older weights
    codes = model.eval().encode(dm.on_after_batch_transfer(dm.train_set[:], 0)[0]).detach()
    sampler = model.latent_sampler
    assert isinstance(sampler, GaussianMixture)
    assert not torch.allclose(sampler.means, final)
    mean_gap = (sampler.means.T @ sampler.weights).float() - codes.mean(0)
    assert mean_gap.abs().max() < 1e-3  # fitted to the older weights' codes


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("prior", type(None)), ("normal", StandardNormal), ("two_stage", SecondStage)],
)
def test_kind_is_chosen_at_test_time_from_a_checkpoint(tmp_path, kind, expected) -> None:
    model, dm = fitted_vae()
    ckpt = tmp_path / "m.ckpt"
    t = trainer(max_epochs=1)
    t.strategy.connect(model)
    t.save_checkpoint(ckpt)
    cb = LatentSampler(kind=kind, stage2_epochs=1)
    trainer(callbacks=[cb], limit_test_batches=1).test(model, dm, ckpt_path=ckpt)
    assert type(model.latent_sampler) is expected


def test_fitted_state_is_restored_from_a_checkpoint_without_refitting(tmp_path) -> None:
    model, dm = fitted_vae()
    cb = LatentSampler(kind="gmm", n_components=2)
    t = trainer(callbacks=[cb], limit_test_batches=1)
    t.test(model, dm)
    t.save_checkpoint(tmp_path / "with_gmm.ckpt")
    restored = LatentSampler(kind="gmm", n_components=2)
    restored.training_codes = None  # type: ignore[assignment, method-assign]  # must not be called
    fresh = VAE(latent_dim=3, width=8)
    trainer(callbacks=[restored], limit_test_batches=1).test(
        fresh, dm, ckpt_path=tmp_path / "with_gmm.ckpt"
    )
    assert isinstance(fresh.latent_sampler, GaussianMixture)
    assert torch.equal(fresh.latent_sampler.means, cb.sampler.means)  # type: ignore[union-attr]


def test_normal_kind_bypasses_a_two_stage_models_own_prior() -> None:
    model = TwoStageVAE(latent_dim=3, width=8, stage2_width=8, stage1_epochs=1, stage2_epochs=1)
    cb = LatentSampler(kind="normal")
    trainer(max_epochs=2, limit_train_batches=1, callbacks=[cb]).fit(model, BlobImages())
    torch.manual_seed(2)
    z = model.sample_latent(4)
    torch.manual_seed(2)
    assert torch.equal(z, torch.randn(4, 3))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="kind"):
        LatentSampler(kind="flow")  # type: ignore[arg-type]

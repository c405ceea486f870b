"""2-stage VAE: learned gamma, the stage schedule, checkpoints, and the two-stage sampling path."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from testutils import BlobImages, changed, needs_fashion_mnist, snapshot, trainer

from latentzoo.zoo import VAE, TwoStageVAE
from latentzoo.zoo.likelihoods import LikelihoodName


def split(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    s2 = {k: v for k, v in state.items() if k.startswith("stage2.")}
    return {k: v for k, v in state.items() if k not in s2}, s2


class EpochSnapshots(L.Callback):
    """The model's state at the end of every training epoch, and the stage of every batch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.stages: list[int] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.states.append(snapshot(pl_module))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.stages.append(pl_module.stage)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.states.append(snapshot(pl_module))


def small(**kw: object) -> TwoStageVAE:
    return TwoStageVAE(latent_dim=4, width=8, stage2_width=8, **kw)  # type: ignore[arg-type]


def saved_vae(path: Path, likelihood: LikelihoodName = "gaussian_gamma", batches: int = 2) -> VAE:
    """A small VAE trained briefly, its checkpoint written to ``path``: a stage 1 to load."""
    vae = VAE(latent_dim=4, width=8, likelihood=likelihood)
    t = trainer(max_epochs=1, limit_train_batches=batches)
    t.fit(vae, BlobImages())
    t.save_checkpoint(path)
    return vae


@needs_fashion_mnist
def test_stage1_gamma_is_trained_on_real_data() -> None:
    from latentzoo.datamodules import FashionMNIST

    model = small(gamma_lr=1e-2)  # the authors' 1e-4 moves log gamma by at most 0.004 in 40 steps
    initial = float(model.likelihood.gamma)
    trainer(max_epochs=1, limit_train_batches=40, limit_val_batches=0).fit(
        model, FashionMNIST(batch_size=64)
    )
    # Pixels in [0, 1] reconstructed by a blurry VAE have squared error << 1 = gamma's start.
    assert float(model.likelihood.gamma) < 0.8 * initial
    assert float(model.stage2.likelihood.gamma) == pytest.approx(initial)  # type: ignore[operator]


def test_stage2_starts_only_after_stage1_and_training_stops_after_both() -> None:
    model = small(stage1_epochs=2, stage2_epochs=1)
    rec = EpochSnapshots()
    t = trainer(max_epochs=10, limit_train_batches=3, callbacks=[rec])
    t.fit(model, BlobImages())
    assert t.current_epoch == 3  # stopped by the model after 2 + 1 epochs, not max_epochs
    assert rec.stages == [1] * 6 + [2] * 3
    for epoch in (1, 2):  # stage 1: only stage-1 weights move
        s1_moved = changed(*[split(rec.states[i])[0] for i in (epoch - 1, epoch)])
        s2_moved = changed(*[split(rec.states[i])[1] for i in (epoch - 1, epoch)])
        assert s1_moved and not s2_moved
    s1_moved = changed(split(rec.states[2])[0], split(rec.states[3])[0])
    s2_moved = changed(split(rec.states[2])[1], split(rec.states[3])[1])
    assert s2_moved and not s1_moved  # batch-norm running statistics included


def test_checkpoint_saved_in_stage2_resumes_in_stage2(tmp_path) -> None:
    model = small(stage1_epochs=1, stage2_epochs=2)
    t = trainer(max_epochs=2, limit_train_batches=2)
    t.fit(model, BlobImages())
    ckpt = tmp_path / "stage2.ckpt"
    t.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 2 and len(saved["optimizer_states"]) == 2
    resumed = small(stage1_epochs=1, stage2_epochs=2)
    rec = EpochSnapshots()
    trainer(max_epochs=5, limit_train_batches=2, callbacks=[rec]).fit(
        resumed, BlobImages(), ckpt_path=ckpt
    )
    assert rec.stages == [2, 2]  # the third epoch only, in stage 2
    before, after = split(saved["state_dict"]), split(snapshot(resumed))
    assert not changed(before[0], after[0])
    assert changed(before[1], after[1])


def test_stage2_alone_from_a_stage1_checkpoint(tmp_path) -> None:
    ckpt = tmp_path / "stage1.ckpt"
    vae = saved_vae(ckpt)
    model = small(stage1_epochs=0, stage2_epochs=1, stage1_checkpoint=str(ckpt))
    stage2_before = split(snapshot(model))[1]
    rec = EpochSnapshots()
    trainer(max_epochs=3, limit_train_batches=2, callbacks=[rec]).fit(model, BlobImages())
    assert rec.stages == [2, 2]
    assert not changed(snapshot(vae), split(snapshot(model))[0])
    assert changed(stage2_before, split(snapshot(model))[1])


def test_resuming_needs_no_stage1_file(tmp_path) -> None:
    # The resumed checkpoint holds the stage 1; the file it first came from may be gone.
    stage1 = tmp_path / "stage1.ckpt"
    vae = saved_vae(stage1)
    model = small(stage1_epochs=0, stage2_epochs=2, stage1_checkpoint=str(stage1))
    t = trainer(max_epochs=1, limit_train_batches=2)
    t.fit(model, BlobImages())
    t.save_checkpoint(tmp_path / "run.ckpt")
    stage1.unlink()
    resumed = small(stage1_epochs=0, stage2_epochs=2, stage1_checkpoint=str(stage1))
    rec = EpochSnapshots()
    trainer(max_epochs=2, limit_train_batches=2, callbacks=[rec]).fit(
        resumed, BlobImages(), ckpt_path=tmp_path / "run.ckpt"
    )
    assert rec.stages == [2, 2]
    assert not changed(split(snapshot(vae))[0], split(snapshot(resumed))[0])


def test_a_checkpoint_without_a_stage1_is_refused(tmp_path) -> None:
    saved_vae(tmp_path / "fixed.ckpt", likelihood="gaussian_fixed", batches=1)  # no gamma
    model = small(stage1_epochs=0, stage2_epochs=1, stage1_checkpoint=str(tmp_path / "fixed.ckpt"))
    with pytest.raises(ValueError, match="does not hold a stage 1"):
        trainer(max_epochs=1, limit_train_batches=1).fit(model, BlobImages())
    with pytest.raises(ValueError, match="stage1_checkpoint"):
        small(stage1_epochs=0)


@pytest.mark.parametrize("noise", [True, False])
def test_sample_goes_through_stage2_and_its_noise(noise: bool) -> None:
    """The authors' sampling (two_stage_vae_model.py): u = u^(z) + gamma_z eps, their gamma_z a
    standard deviation, here sqrt of the variance gamma; ``sample_noise=False``: u^(z)."""
    model = small(sample_noise=noise).eval()
    with torch.no_grad():
        model.stage2.likelihood.raw.fill_(-1.0)  # gamma = softplus(-1) + 1e-6, not 1
        gamma = model.stage2.likelihood.gamma
        torch.manual_seed(3)
        samples = model.sample(16)
        torch.manual_seed(3)
        direct = model.decode(torch.randn(16, 4))
        torch.manual_seed(3)
        u = model.stage2.decode(torch.randn(16, 4))
        u = u + gamma.sqrt() * torch.randn(16, 4) if noise else u
        via_stage2 = model.decode(u)
    assert samples.shape == (16, 1, 28, 28)
    assert not torch.allclose(samples, direct, atol=1e-3)
    torch.testing.assert_close(samples, via_stage2)

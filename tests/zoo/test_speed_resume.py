"""With the speed settings on, runs are kept, resumed and stopped as today, and every checkpoint
loads: the settings are not in the checkpoint, and a state dict holds the same values in either
memory layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from testutils import CrashAtStep, LabelledNoise, PoisonAtStep, trainer
from torch.utils.data import DataLoader, TensorDataset

from latentzoo.callbacks import FiniteLossGuard, LastCheckpoint
from latentzoo.callbacks.guard import NonFiniteLossError
from latentzoo.zoo import LMGAE, VAE, VAEGAN, WAEGP, AutoencoderModule, TwoStageVAE
from latentzoo.zoo.speed import SpeedSettings

ALL_ON = SpeedSettings(channels_last=True, optimizer="fused")
BEFORE = SpeedSettings(channels_last=False, optimizer="default")  # the step before issue 17
FIXTURES = Path(__file__).with_name("fixtures")
OLD = {"waegp": WAEGP, "lmgae": LMGAE, "vaegan": VAEGAN, "two_stage_vae": TwoStageVAE}
STEPS = 6  # 64 training samples in batches of 16: 4 a epoch, so the run crosses an epoch end


def fit(
    model: AutoencoderModule,
    folder: Path,
    speed: SpeedSettings,
    *callbacks: L.Callback,
    ckpt_path: Path | None = None,
) -> L.Trainer:
    model.speed = speed
    run = trainer(
        max_steps=STEPS,
        enable_checkpointing=True,
        limit_val_batches=0,
        callbacks=[FiniteLossGuard(), LastCheckpoint(str(folder), every_n_steps=1), *callbacks],
    )
    run.fit(model, LabelledNoise(n=80, batch_size=16, val_size=16), ckpt_path=ckpt_path)
    return run


def build(cls: type[AutoencoderModule]) -> AutoencoderModule:
    L.seed_everything(0, verbose=False)
    return cls(data_shape=(1, 28, 28))


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("cls", [VAE, WAEGP], ids=["vae", "waegp"])
def test_a_crashed_run_resumes_to_the_uninterrupted_weights_with_the_switches_on(
    cls: type[AutoencoderModule], tmp_path: Path
) -> None:
    fit(build(cls), tmp_path / "whole", ALL_ON)
    with pytest.raises(RuntimeError, match="simulated crash at step 3"):
        fit(build(cls), tmp_path / "broken", ALL_ON, CrashAtStep(3))
    last = tmp_path / "broken" / "last.ckpt"
    assert load(last)["global_step"] == 3
    fit(build(cls), tmp_path / "broken", ALL_ON, ckpt_path=last)
    final, expected = load(last), load(tmp_path / "whole" / "last.ckpt")
    assert final["global_step"] == expected["global_step"] == STEPS
    for name, value in expected["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], value, rtol=0, atol=1e-6)


def test_todays_checkpoint_resumes_with_the_switches_on_and_back(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(build(VAE), tmp_path / "today", BEFORE, CrashAtStep(3))
    saved = load(tmp_path / "today" / "last.ckpt")

    class Restored(L.Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.state = {k: v.clone() for k, v in pl_module.state_dict().items()}
            self.steps = [s["step"].item() for s in trainer.optimizers[0].state.values()]

    seen = Restored()
    run = fit(
        build(VAE), tmp_path / "fast", ALL_ON, seen, ckpt_path=tmp_path / "today" / "last.ckpt"
    )
    assert run.global_step == STEPS
    for name, value in saved["state_dict"].items():
        assert torch.equal(seen.state[name], value), name  # values, whatever the layout
    assert set(seen.steps) == {3.0}  # Adam's state landed, step counts included
    fast = load(tmp_path / "fast" / "last.ckpt")
    assert fast["hyper_parameters"] == saved["hyper_parameters"]  # no setting leaks in

    loaded = VAE.load_from_checkpoint(tmp_path / "fast" / "last.ckpt")  # at the defaults
    plain = build(VAE)  # and back to the step before: NCHW, the same values
    plain.speed = BEFORE
    plain.configure_model()
    plain.load_state_dict(fast["state_dict"])
    for name, value in plain.state_dict().items():
        assert value.is_contiguous() and torch.equal(value, fast["state_dict"][name]), name
        assert torch.equal(loaded.state_dict()[name], value), name
    assert not loaded.encoder.features[2].weight.is_contiguous()  # channels_last, as it trained


def test_the_finite_loss_guard_stops_at_the_bad_step_with_the_switches_on(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"training stopped at step 2 .*recon=nan"):
        fit(build(VAE), tmp_path, ALL_ON, PoisonAtStep(2))
    state = load(tmp_path / "last.ckpt")
    assert state["global_step"] == 2  # the weights before the bad step
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


@pytest.mark.parametrize("name", list(OLD))
def test_old_checkpoints_load_and_resume_with_the_switches_on(name: str, tmp_path: Path) -> None:
    """The fixtures of tests/zoo/test_old_checkpoints.py (written before the phase engine)."""
    path = FIXTURES / f"old_{name}.pt"
    saved = load(path)
    model = OLD[name].load_from_checkpoint(path)
    model.speed = ALL_ON
    for key, value in saved["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value), key
    gen = torch.Generator().manual_seed(1)
    data = DataLoader(TensorDataset(torch.rand(32, 8, generator=gen), torch.zeros(32)), 8)
    run = trainer(max_steps=saved["global_step"] + 2, default_root_dir=tmp_path)
    run.fit(model, data, ckpt_path=path)
    assert run.global_step == saved["global_step"] + 2
    assert all(torch.isfinite(p).all() for p in model.parameters())

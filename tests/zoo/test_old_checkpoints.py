"""Checkpoints written before the phase engine (commit 0fe9bdf) load and resume with it.

The fixtures were written by ``fixtures/make_old_checkpoints.py`` at that commit, mid-epoch, when
``global_step`` counted optimizer steps; the engine keeps each model's optimizer order, so every
optimizer's state must land in the optimizer of the same network.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from latentzoo.zoo import LMGAE, VAEGAN, WAEGP, TwoStageVAE
from latentzoo.zoo.phases import PhasedAutoencoder

FIXTURES = Path(__file__).with_name("fixtures")
MODELS: dict[str, type[PhasedAutoencoder]] = {
    "waegp": WAEGP,
    "lmgae": LMGAE,
    "vaegan": VAEGAN,
    "two_stage_vae": TwoStageVAE,
}


def owners(model: PhasedAutoencoder) -> list[list[nn.Parameter]]:
    """Each phase's parameters, phases in optimizer order."""
    out = []
    for phase in model.phases():
        params = phase.params
        out.append(list(params.parameters() if isinstance(params, nn.Module) else params))
    return out


class OptimizerStates(L.Callback):
    """Each optimizer's state when training starts (restored by then) and batches trained."""

    def __init__(self) -> None:
        self.batches = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.states = [
            {p: {k: t.clone() for k, t in s.items()} for p, s in o.state.items()}
            for o in trainer.optimizers
        ]  # copies: the steps update the tensors in place
        self.params = [[p for g in o.param_groups for p in g["params"]] for o in trainer.optimizers]
        self.step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.batches += 1


@pytest.mark.parametrize("name", list(MODELS))
def test_old_checkpoint_loads_and_resumes_into_the_right_optimizers(name: str, tmp_path) -> None:
    path = FIXTURES / f"old_{name}.pt"
    saved = torch.load(path, weights_only=False, map_location="cpu")
    model = MODELS[name].load_from_checkpoint(path)
    for key, value in saved["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value), key
    rec = OptimizerStates()
    gen = torch.Generator().manual_seed(1)
    data = DataLoader(TensorDataset(torch.rand(32, 8, generator=gen), torch.zeros(32)), 8)
    trainer = L.Trainer(
        max_steps=saved["global_step"] + 2,  # two more batches, one global step each
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[rec],
    )
    trainer.fit(model, data, ckpt_path=path)
    assert rec.step == saved["global_step"]
    assert rec.batches == 2 and trainer.global_step == saved["global_step"] + 2
    for i, (params, own) in enumerate(zip(rec.params, owners(model), strict=True)):
        assert {id(p) for p in params} == {id(p) for p in own}, f"optimizer {i}'s parameters"
        old = saved["optimizer_states"][i]["state"]
        assert len(rec.states[i]) == len(old), i
        for j, p in enumerate(params):
            for key, value in old[j].items():
                restored = rec.states[i][p][key]
                assert torch.equal(restored, value), (i, j, key)
                if value.ndim:  # per-parameter statistics have that parameter's shape
                    assert restored.shape == p.shape, (i, j, key)
    assert all(torch.isfinite(v).all() for v in trainer.callback_metrics.values())


def test_old_lmgae_schedule_and_two_stage_vae_stage_resume() -> None:
    lmgae = LMGAE.load_from_checkpoint(FIXTURES / "old_lmgae.pt")
    assert int(lmgae.mask_steps) == 6  # 4 + 2 batches: the schedule counts batches throughout
    two_stage = TwoStageVAE.load_from_checkpoint(FIXTURES / "old_two_stage_vae.pt")
    saved = torch.load(FIXTURES / "old_two_stage_vae.pt", weights_only=False)
    assert saved["epoch"] == 1 >= two_stage.stage1_epochs  # it resumes in stage 2

"""Manual-optimization models under multi-process DDP: they train, or say which strategy to use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch.distributed as dist
from testutils import ROOT, run_python
from torch.nn.parallel import DistributedDataParallel

from latentzoo.zoo import VAE, WAEGP

SCRIPT = Path(__file__).with_name("ddp_train_script.py")
MODELS = ("WAEGP", "LMGAE", "TwoStageVAE", "VAEGAN")


@pytest.mark.slow  # two DDP processes, four models, about 10 s
def test_two_processes_train_every_manual_optimization_model(tmp_path: Path) -> None:
    proc = run_python(SCRIPT, tmp_path, pythonpath=[ROOT / "tests"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert "--trainer.strategy ddp_find_unused_parameters_true" in rank["plain_ddp_error"]
    for name in MODELS:
        zero, one = ranks[0][name], ranks[1][name]
        assert zero["before"] == one["before"], name
        assert zero["after"] != zero["before"], f"{name} did not train"
        assert zero["after"] == one["after"], f"{name}'s ranks diverged"  # gradients all-reduced
        assert zero["finite"] and one["finite"], name
    gmm = [rank["WAEGP"]["gmm_means"] for rank in ranks]
    assert gmm[0] is not None and gmm[0] == gmm[1]  # fitted at train end, broadcast to rank 1


@pytest.fixture
def one_process_group(tmp_path: Path) -> Iterator[None]:
    """A 1-process gloo group, enough to build a real ``DistributedDataParallel`` wrapper."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def wrapped(model: L.LightningModule, find_unused_parameters: bool) -> L.LightningModule:
    """``model`` attached to a trainer whose strategy has wrapped it in DDP, as at fit start."""
    model.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False)
    ddp = DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)
    model.trainer.strategy.model = ddp
    return model


@pytest.mark.usefixtures("one_process_group")
def test_plain_ddp_is_refused_only_where_it_would_fail() -> None:
    with pytest.raises(ValueError, match="ddp_find_unused_parameters_true"):
        wrapped(WAEGP(latent_dim=2, width=4), find_unused_parameters=False).on_fit_start()
    wrapped(WAEGP(latent_dim=2, width=4), find_unused_parameters=True).on_fit_start()
    wrapped(VAE(latent_dim=2, width=4), find_unused_parameters=False).on_fit_start()  # 1 optimizer

"""Manual-optimization models under multi-process DDP: they train, or say which strategy to use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from latentzoo.zoo import VAE, WAEGP

SCRIPT = Path(__file__).with_name("ddp_train_script.py")
MODELS = ("WAEGP", "LMGAE", "TwoStageVAE", "VAEGAN")


def test_two_processes_train_every_manual_optimization_model(tmp_path: Path) -> None:
    root = Path(__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
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


def connected(model: L.LightningModule, strategy: str) -> L.LightningModule:
    """``model`` attached to a 2-process CPU trainer that is never run."""
    model.trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, logger=False)
    return model


def test_plain_ddp_is_refused_only_where_it_would_fail() -> None:
    with pytest.raises(ValueError, match="ddp_find_unused_parameters_true"):
        connected(WAEGP(latent_dim=2, width=4), "ddp").setup("fit")
    connected(WAEGP(latent_dim=2, width=4), "ddp_find_unused_parameters_true").setup("fit")
    connected(WAEGP(latent_dim=2, width=4), "ddp").setup("test")  # no backward outside fit
    connected(VAE(latent_dim=2, width=4), "ddp").setup("fit")  # one optimizer, one backward

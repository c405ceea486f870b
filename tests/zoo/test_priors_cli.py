"""``--model.prior`` through the real command line, in a subprocess: fit one epoch, then the
checkpoint loads by class with its prior restored exactly, and samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from testutils import run_python

import latentzoo
from latentzoo.zoo import FlowPrior, MoG, StandardNormal, VampPrior

SMALL = ["--data", "Synthetic", "--data.data_dim", "12", "--data.num_train", "96",
         "--data.val_size", "32", "--data.batch_size", "32", "--trainer.max_epochs", "1",
         "--trainer.enable_progress_bar", "false", "--model.latent_dim", "2",
         "--model.width", "4"]  # fmt: skip

CASES = {
    "mog": (["--model", "VAE", "--model.prior", "MoG", "--model.prior.num_components", "5"], MoG),
    "vamp": (
        ["--model", "BetaVAE", "--model.prior", "VampPrior", "--model.prior.num_components", "7"],
        VampPrior,
    ),
    "flow": (
        ["--model", "VAE", "--model.prior", "FlowPrior", "--model.prior.num_layers", "2"],
        FlowPrior,
    ),
    "lipschitz": (["--model", "LipschitzVAE", "--model.clip_value", "0.2"], StandardNormal),
}


def state_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


@pytest.mark.slow  # four fits through the CLI, about 30 s
@pytest.mark.parametrize("case", list(CASES))
def test_fit_with_a_prior_then_load_and_sample(case: str, tmp_path: Path) -> None:
    args, prior_cls = CASES[case]
    proc = run_python("-m", "latentzoo", "fit", *args, *SMALL, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = tmp_path.glob("runs/*/version_0/checkpoints/last.ckpt")
    model = latentzoo.load(path)
    assert type(model).__name__ == args[1]
    assert type(model.prior) is prior_cls
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    prior_keys = [k for k in state if k.startswith("prior.")]
    assert bool(prior_keys) == (prior_cls is not StandardNormal)
    restored = model.state_dict()
    assert all(torch.equal(state[k], restored[k]) for k in state)
    with torch.no_grad():
        assert model.sample(8).shape == (8, 12)
    if prior_cls is MoG:
        assert model.prior.means.shape == (5, 2)
    if prior_cls is VampPrior:  # sized from the linked data shape and the model's latent_dim
        assert model.prior.pseudo_inputs.shape == (7, 12)
        assert bool(model.prior.initialised)
    if case == "mog":  # the same command line resumes the run: the prior matches the file's
        proc = run_python("-m", "latentzoo", "fit", *args, *SMALL, "--trainer.max_epochs", "2",
                          "--ckpt_path", "last", cwd=tmp_path, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        resumed = torch.load(
            tmp_path / "runs/VAE-Synthetic/version_1/checkpoints/last.ckpt", weights_only=True
        )
        assert resumed["global_step"] == 2 * state_step(path)
    if args[1] == "LipschitzVAE":
        c32 = float(torch.tensor(0.2))  # 0.2 rounded to float32
        assert all(float(p.detach().abs().max()) <= c32 for p in model.clipped_parameters())

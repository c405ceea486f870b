"""Nothing lost, nothing silent: ``last.ckpt``, exact resume and the loss guard, through the CLI.

Every test runs ``python -m latentzoo`` in a real subprocess, as a user would, and kills it with
real signals where the failure is a kill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from testutils import ROOT, group_members, run_python, started

# 400 - 100 held out = 300 training samples: 6 batches of 50 per epoch.
SMALL = ["--data.num_train", "400", "--data.val_size", "100", "--data.batch_size", "50",
         "--model.width", "8", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]  # fmt: skip
BATCHES_PER_EPOCH = 6
# An evaluation at every epoch's end, which writes metrics_val_step<N>.json.
HOLES = ["--trainer.callbacks+=latentzoo.callbacks.HolesCallback",
         "--trainer.callbacks.every_n_epochs", "1", "--trainer.callbacks.num_prior", "200",
         "--trainer.callbacks.num_reference", "40",
         "--trainer.callbacks.picture", "false"]  # fmt: skip


def latentzoo(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = run_python("-m", "latentzoo", *args, cwd=cwd, pythonpath=[ROOT / "tests"], timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def last_ckpts(cwd: Path) -> list[Path]:
    return sorted(cwd.glob("runs/VAE-Synthetic/version_*/checkpoints/last.ckpt"))


@pytest.mark.slow  # a killed fit and its resume, about 18 s
def test_kill_9_at_a_random_step_then_resume_ends_with_the_uninterrupted_weights(
    tmp_path: Path,
) -> None:
    total = 3 * BATCHES_PER_EPOCH
    step = random.SystemRandom().randrange(1, total)  # any step, epoch boundaries included
    fit = ["fit", *SMALL, "--trainer.max_epochs", "3", "--last.every_n_steps", "1"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir(), broken.mkdir()
    latentzoo(whole, *fit)

    killed = latentzoo(broken, *fit, "--trainer.callbacks+=testutils.KillAtStep",
                       f"--trainer.callbacks.step={step}", check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = load(last_ckpts(broken)[0])["global_step"]
    assert saved <= step, f"killed at step {step}, last.ckpt claims step {saved}"

    resumed = latentzoo(broken, *fit, "--ckpt_path", "last")
    assert "resuming from runs/VAE-Synthetic/version_0/checkpoints/last.ckpt" in resumed.stderr
    final = load(last_ckpts(broken)[-1])
    expected = load(last_ckpts(whole)[0])
    assert final["global_step"] == expected["global_step"] == total
    for name, value in expected["state_dict"].items():
        assert torch.allclose(final["state_dict"][name], value, rtol=0, atol=1e-6), (
            f"after kill -9 at step {step} (resumed from step {saved}), {name} differs"
        )


@pytest.mark.slow  # a CLI fit in a subprocess, about 6 s
def test_last_ckpt_is_the_last_state_when_the_monitored_metric_stops_improving(
    tmp_path: Path,
) -> None:
    # mode=max on a falling loss: the first epoch stays "best" and no top-k save happens later,
    # which is when Lightning's save_last left last.ckpt behind.
    proc = latentzoo(tmp_path, "fit", *SMALL, "--trainer.max_epochs", "3",
                     "--checkpoint.mode", "max")  # fmt: skip
    folder = tmp_path / "runs/VAE-Synthetic/version_0/checkpoints"
    assert load(folder / "last.ckpt")["global_step"] == 3 * BATCHES_PER_EPOCH
    assert {p.name for p in folder.iterdir()} == {"last.ckpt", "epoch000-step6.ckpt"}
    assert f"last.ckpt (step {3 * BATCHES_PER_EPOCH}, end of epoch 2)" in proc.stdout


@pytest.mark.slow  # a CLI fit in a subprocess, about 6 s
def test_a_diverging_run_stops_with_exit_1_and_keeps_a_finite_last_ckpt(tmp_path: Path) -> None:
    proc = latentzoo(tmp_path, "fit", *SMALL, "--trainer.max_epochs", "3", "--model.lr", "1e6",
                     "--last.every_n_steps", "1", check=False)  # fmt: skip
    assert proc.returncode == 1
    (line,) = [
        ln for ln in proc.stderr.splitlines() if ln.startswith("latentzoo: training stopped")
    ]
    assert "Traceback" not in proc.stderr
    state = load(last_ckpts(tmp_path)[0])
    assert f"at step {state['global_step']} " in line  # last.ckpt: the step before the bad one
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_a_nan_in_the_data_names_the_step_and_the_terms(tmp_path: Path) -> None:
    proc = latentzoo(tmp_path, "fit", *SMALL, "--trainer.max_epochs", "2",
                     "--trainer.callbacks+=testutils.PoisonAtStep", "--trainer.callbacks.step=8",
                     check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "training stopped at step 8 (epoch 1): the loss is nan (recon=nan" in proc.stderr
    assert load(last_ckpts(tmp_path)[0])["global_step"] == 8  # weights before the bad step


@pytest.mark.slow  # a CLI fit in a subprocess, about 6 s
def test_an_exploding_but_finite_loss_stops_too(tmp_path: Path) -> None:
    proc = latentzoo(tmp_path, "fit", *SMALL, "--trainer.max_epochs", "1",
                     "--model.decoder_sigma", "1e-12", check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "training stopped at step 0" in proc.stderr and "beyond 1e+20" in proc.stderr


@pytest.mark.slow  # two fits and a resume, about 25 s
def test_resume_last_takes_the_newest_run_and_says_so(tmp_path: Path) -> None:
    nothing = latentzoo(tmp_path, "fit", *SMALL, "--ckpt_path", "last", check=False)
    assert nothing.returncode != 0
    assert nothing.stderr.strip().splitlines()[-1].startswith("latentzoo: --ckpt_path last: no")
    for epochs in ("1", "2"):  # two separate runs, each in its own version folder
        latentzoo(tmp_path, "fit", *SMALL, "--trainer.max_epochs", epochs)
    first, second = last_ckpts(tmp_path)
    os.utime(first, (time.time() + 60, time.time() + 60))  # version_0 is now the newest file
    resumed = latentzoo(tmp_path, "fit", *SMALL, "--trainer.max_epochs", "3", "--ckpt_path", "last")
    assert f"resuming from {first.relative_to(tmp_path)}" in resumed.stderr
    assert "1 epochs" not in resumed.stdout and "3 epochs, 18 steps" in resumed.stdout
    assert load(second)["global_step"] == 2 * BATCHES_PER_EPOCH  # the other run is untouched


def test_ctrl_c_saves_last_ckpt_and_nothing_else(tmp_path: Path) -> None:
    with started("-m", "latentzoo", "fit", *SMALL, "--trainer.max_epochs", "1000",
                 "--data.num_train", "4000", cwd=tmp_path, pythonpath=[ROOT / "tests"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
        folder = tmp_path / "runs/VAE-Synthetic/version_0/checkpoints"
        deadline = time.monotonic() + 300
        while not list(folder.glob("epoch*.ckpt")) and time.monotonic() < deadline:
            time.sleep(0.2)  # wait for the first epoch to end, then interrupt mid-epoch
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and names[0].startswith("epoch"), names  # no stray exception copy
    best = int(names[0].split("step")[1].split(".")[0])
    assert load(folder / "last.ckpt")["global_step"] >= best  # saved at the interrupt


@pytest.mark.slow  # a CLI fit in a subprocess, about 6 s
def test_sigterm_in_training_keeps_a_finite_last_ckpt_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    """What a scheduler's time limit does to a run: SIGTERM to the process, in mid-epoch."""
    run = tmp_path / "runs/VAE-Synthetic/version_0"
    with started("-m", "latentzoo", "fit", *SMALL, *HOLES, "--trainer.max_epochs", "1000",
                 "--data.num_train", "4000", cwd=tmp_path, pythonpath=[ROOT / "tests"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
        deadline = time.monotonic() + 300
        while not list(run.glob("checkpoints/epoch*.ckpt")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the first epoch and its evaluation are done: into the second
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    (line,) = [ln for ln in err.splitlines() if ln.startswith("latentzoo: stopped by SIGTERM")]
    state = load(run / "checkpoints/last.ckpt")
    assert f"last.ckpt holds step {state['global_step']}, " in line
    assert line.endswith("resume with the same command and --ckpt_path last")
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
    # A fast machine may finish more epochs in the half second before the signal.
    epochs = list(run.glob("checkpoints/epoch*.ckpt"))
    assert epochs and all(state["global_step"] >= load(e)["global_step"] for e in epochs)
    written = list(run.glob("metrics_val_step*.json"))  # each epoch's evaluation, kept
    assert written and all(0 <= json.loads(w.read_text())["val/holes"] <= 1 for w in written)


@pytest.mark.slow  # two DDP processes, about 10 s
@pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")
def test_two_process_ddp_fit_through_the_cli_exits_0(tmp_path: Path) -> None:
    proc = latentzoo(tmp_path, "fit", *SMALL, "--trainer.max_epochs", "1",
                     "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                     "--trainer.strategy", "ddp")  # fmt: skip
    assert "latentzoo: VAE on Synthetic, 1 epochs, 3 steps" in proc.stdout  # 300 / (50 * 2)
    assert proc.stdout.count("latentzoo: VAE on Synthetic") == 1  # rank 0 alone prints it
    assert load(last_ckpts(tmp_path)[0])["global_step"] == 3


@pytest.mark.slow  # two DDP processes, trained until the first epoch ends
@pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")
def test_sigterm_to_the_ddp_launcher_stops_every_rank_and_keeps_the_last_save(
    tmp_path: Path,
) -> None:
    """``kill PID`` of the command a user started: rank 0, which launched rank 1."""
    folder = tmp_path / "runs/VAE-Synthetic/version_0/checkpoints"
    with started("-m", "latentzoo", "fit", *SMALL, "--trainer.max_epochs", "1000",
                 "--data.num_train", "4000", "--trainer.accelerator", "cpu",
                 "--trainer.devices", "2", "--trainer.strategy", "ddp", cwd=tmp_path,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
        deadline = time.monotonic() + 300
        while not list(folder.glob("epoch*.ckpt")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the first epoch is saved: into the second
        time.sleep(0.5)
        assert len(group_members(proc)) == 2  # both ranks train
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while group_members(proc) and time.monotonic() < deadline:
            time.sleep(0.2)  # rank 1, killed by rank 0 on its way out
        left = group_members(proc)
    assert not left, f"processes left running: {left}"
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    (line,) = [ln for ln in err.splitlines() if ln.startswith("latentzoo: stopped by SIGTERM")]
    state = load(folder / "last.ckpt")  # an epoch's end: no save where the ranks were stopped
    assert f"last.ckpt holds step {state['global_step']}, end of epoch " in line
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())

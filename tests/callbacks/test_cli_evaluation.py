"""Evaluation through ``python -m latentzoo`` as a user runs it: a short ``fit`` ends with its
metrics in the summary, and Ctrl-C or SIGTERM in a slow evaluation keeps the values computed
before it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import torch
from testutils import started

SMALL = ["--model", "VAE", "--data", "Synthetic", "--data.num_train", "400",
         "--data.val_size", "100", "--data.batch_size", "50", "--model.width", "4"]  # fmt: skip
HOLES = ["--trainer.callbacks+=latentzoo.callbacks.HolesCallback",
         "--trainer.callbacks.num_prior", "200", "--trainer.callbacks.num_reference", "40",
         "--trainer.callbacks.picture", "false"]  # fmt: skip
CSV = ["--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", "runs"]


def latentzoo(*args: str, cwd: Path) -> AbstractContextManager[subprocess.Popen[str]]:
    """``python -m latentzoo ARGS`` in a process the test owns (killed on the way out)."""
    return started(
        "-m", "latentzoo", *args,
        cwd=cwd,
        pythonpath=[Path(__file__).parent],  # sleeping.Sleep resolves
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.slow  # a CLI run in a subprocess, about 7 s
def test_one_epoch_fit_prints_the_callbacks_values_though_none_was_due(tmp_path: Path) -> None:
    with latentzoo("fit", *SMALL, *HOLES, *CSV, "--trainer.max_epochs", "1", cwd=tmp_path) as proc:
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    (written,) = (tmp_path / "runs" / "VAE-Synthetic" / "version_0").glob("metrics_val_*.json")
    holes = json.loads(written.read_text())["val/holes"]
    summary = out[out.index("latentzoo: VAE on Synthetic") :]
    printed = re.search(r"val/holes\s+(\S+)", summary)  # HolesCallback's every_n_epochs is 5
    assert printed is not None, summary
    assert float(printed.group(1)) == pytest.approx(holes, rel=1e-5)


@pytest.mark.slow  # a CLI run in a subprocess, about 7 s
def test_ctrl_c_in_a_slow_evaluation_keeps_the_values_already_computed(tmp_path: Path) -> None:
    with latentzoo("test", *SMALL, *HOLES, *CSV, "--trainer.callbacks+=sleeping.Sleep",
                   cwd=tmp_path) as proc:  # fmt: skip
        run = tmp_path / "runs" / "VAE-Synthetic" / "version_0"
        written = run / "metrics_test_step0.json"
        deadline = time.monotonic() + 240
        while not written.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # HolesCallback is done once its file exists; Sleep runs next
        assert written.is_file(), proc.communicate()[1][-3000:]
        time.sleep(1.0)  # into Sleep.evaluate
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert "KeyboardInterrupt" in err and proc.returncode != 0
    values = json.loads(written.read_text())
    assert set(values) == {"test/holes", "test/kl_prior_agg", "test/kl_agg_prior",
                           "test/offdiag_cov", "test/intrinsic_dim", "test/intrinsic_dim_prior",
                           "test/low_dim_share"}  # fmt: skip  # nothing from the interrupted one
    assert 0 <= values["test/holes"] <= 1
    csv_header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "test/holes" in csv_header and "test/slept" not in csv_header


@pytest.mark.slow  # a CLI run in a subprocess, about 7 s
def test_sigterm_in_a_slow_evaluation_of_fit_keeps_the_values_and_a_finite_last_ckpt(
    tmp_path: Path,
) -> None:
    """A scheduler's time limit in the middle of an evaluation that would run for minutes."""
    every_epoch = ["--trainer.callbacks.every_n_epochs", "1"]  # HolesCallback's, then Sleep's
    with latentzoo("fit", *SMALL, *HOLES, *every_epoch, *CSV, "--trainer.max_epochs", "1",
                   "--trainer.callbacks+=sleeping.Sleep", cwd=tmp_path) as proc:  # fmt: skip
        run = tmp_path / "runs" / "VAE-Synthetic" / "version_0"
        written = run / "metrics_val_step6.json"  # 300 training samples, batches of 50
        deadline = time.monotonic() + 240
        while not written.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # HolesCallback is done once its file exists; Sleep runs next
        assert written.is_file(), proc.communicate()[1][-3000:]
        time.sleep(1.0)  # into Sleep.evaluate
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    (line,) = [ln for ln in err.splitlines() if ln.startswith("latentzoo: stopped by SIGTERM")]
    assert "last.ckpt holds step 6, during epoch 0; resume with" in line, line
    values = json.loads(written.read_text())
    assert set(values) == {"val/holes", "val/kl_prior_agg", "val/kl_agg_prior",
                           "val/offdiag_cov", "val/intrinsic_dim", "val/intrinsic_dim_prior",
                           "val/low_dim_share"}  # fmt: skip  # nothing from the interrupted one
    csv_header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "val/holes" in csv_header and "val/slept" not in csv_header
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 6
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())

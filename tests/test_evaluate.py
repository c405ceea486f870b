"""``latentzoo evaluate`` through the entry point, in real processes, on a tiny quickstart run."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from testutils import run_python

from latentzoo.callbacks.batches import generated_batches
from latentzoo.datamodules import Synthetic
from latentzoo.evaluation import load_samples
from latentzoo.metrics.frechet import frechet_distance_between
from latentzoo.metrics.precision_recall import precision_recall
from latentzoo.zoo import VAE

SMALL = ["--data.num_train", "400", "--data.val_size", "100", "--data.batch_size", "50"]
PIXELS = ["--extractor", "pixels", "--num_real", "300", "--batch_size", "100"]


def latentzoo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return run_python("-m", "latentzoo", *args, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch quickstart run; returns its folder (``runs/VAE-Synthetic/version_0``)."""
    root = tmp_path_factory.mktemp("run")
    proc = latentzoo(
        "fit", *SMALL, "--trainer.max_epochs", "1", "--model.width", "8",
        "--trainer.enable_progress_bar", "false", cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    version = root / "runs" / "VAE-Synthetic" / "version_0"
    assert (version / "checkpoints" / "last.ckpt").is_file() and (version / "config.yaml").is_file()
    return version


def synthetic() -> Synthetic:
    """The run's data set (the quickstart's Synthetic with the run's sizes)."""
    dm = Synthetic(num_train=400, val_size=100, batch_size=50)
    dm.setup("fit")
    return dm


def test_checkpoint_is_scored_on_its_run_data_and_agrees_with_a_recomputation(run: Path) -> None:
    ckpt = run / "checkpoints" / "last.ckpt"
    out = run.parent / "results.json"
    proc = latentzoo(
        "evaluate", "--ckpt_path", str(ckpt), *PIXELS, "--num_samples", "200",
        "--accelerator", "cpu", "--output", str(out), "--cache_dir", str(run / "cache"),
        cwd=run.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    for key in ("fid", "kid", "kid_std", "precision", "recall", "fid_recon", "holes",
                "active_dims", "loss"):  # fmt: skip
        assert math.isfinite(metrics[f"test/{key}"]), key
        assert f"test/{key}" in proc.stdout  # the printed table
    # --data came from the run's config.yaml: its num_train, not Synthetic's default
    assert result["data"]["class_path"].endswith("Synthetic")
    assert result["data"]["init_args"]["num_train"] == 400

    # The same numbers from the checkpoint's own samples (prior sampler, seed 0, batches of 100)
    model = VAE.load_from_checkpoint(ckpt, map_location="cpu")
    fake = torch.cat(list(generated_batches(model, 200, 100, seed=0, clamp=False)))  # (200, 128)
    real = synthetic().split_tensors("test")[0][:300]  # the reference split is test (issue 18)
    assert metrics["test/fid"] == pytest.approx(float(frechet_distance_between(real, fake)), 1e-4)
    precision, recall = precision_recall(real, fake.float())
    # logged as float32; one sample decided differently would move a value by 1/300 or 1/200
    assert metrics["test/precision"] == pytest.approx(float(precision), abs=1e-6)
    assert metrics["test/recall"] == pytest.approx(float(recall), abs=1e-6)


@pytest.mark.slow  # three evaluate processes, about 11 s
def test_a_checkpoint_without_its_run_needs_data(run: Path, tmp_path: Path) -> None:
    alone = tmp_path / "model.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", alone)
    proc = latentzoo("evaluate", "--ckpt_path", str(alone), *PIXELS, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--data is required" in proc.stderr and "config.yaml" in proc.stderr
    helped = latentzoo("evaluate", "--help", cwd=tmp_path)
    assert helped.returncode == 0
    assert all(opt in helped.stdout for opt in ("--ckpt_path", "--samples", "--sampler"))


def test_saved_samples_are_scored_against_the_split(tmp_path: Path) -> None:
    real = synthetic().split_tensors("test")[0][:300]  # the reference split is test (issue 18)
    # 100 test points and 50 far off: precision is 2/3 (every point lies in its own ball)
    samples = torch.cat([real[:100], real[100:150] + 50.0])  # (150, 128)
    torch.save(samples, tmp_path / "samples.pt")
    out = tmp_path / "results.json"
    proc = latentzoo(
        "evaluate", "--samples", "samples.pt", "--data", "Synthetic", *SMALL, *PIXELS,
        "--output", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(out.read_text())["metrics"]
    keys = ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage")
    assert set(metrics) == {f"test/{k}" for k in (*keys, "fd_inf")}  # fd_inf: N < 10,000
    assert metrics["test/fid"] == pytest.approx(float(frechet_distance_between(real, samples)))
    precision, recall = precision_recall(real, samples)
    assert metrics["test/precision"] == pytest.approx(2 / 3) and 0 < float(recall) < 1
    assert (metrics["test/precision"], metrics["test/recall"]) == (float(precision), float(recall))
    # Density and coverage (Naeem et al. 2020, k = 5) written out: the 50 far samples fall in no
    # real point's ball, and the 100 copies cover at least their own 100 real points.
    # Strictly inside, as in the authors' prdc: a copy of a point's 5th neighbour lies on the
    # boundary of its ball and is out (with <= the density here would read 0.756, not 0.651).
    real64, samples64 = real.double(), samples.double()
    radii = torch.cdist(real64, real64).kthvalue(6, dim=1).values  # 5th neighbour, self excluded
    inside = torch.cdist(real64, samples64) < radii[:, None]  # (300, 150)
    assert not inside[:, 100:].any()
    assert metrics["test/density"] == pytest.approx(inside.sum().item() / (5 * 150), rel=1e-5)
    assert metrics["test/coverage"] == pytest.approx(inside.any(dim=1).float().mean().item())
    assert metrics["test/coverage"] >= 1 / 3


def test_image_folders_are_read_in_name_order_and_checked(tmp_path: Path) -> None:
    pixels = np.arange(3 * 16, dtype=np.uint8).reshape(3, 4, 4) * 5  # (N, H, W)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / f"{i:02d}.png")
    x = load_samples(tmp_path, (1, 4, 4))
    torch.testing.assert_close(x, torch.from_numpy(pixels)[:, None].float() / 255)
    with pytest.raises(SystemExit, match=r"shape \(3, 3, 4, 4\)"):
        load_samples(tmp_path, (3, 8, 8))  # read as RGB, then the wrong size
    torch.save(torch.rand(5, 7) * 2, tmp_path / "vectors.pt")
    with pytest.raises(SystemExit, match=r"needs \(N >= 2, 3, 8, 8\)"):
        load_samples(tmp_path / "vectors.pt", (3, 8, 8))

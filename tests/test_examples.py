"""The worked examples of docs/examples: a new metric, a new latent density and a new suite, each
one file that registers itself, and every surface (``latentzoo evaluate``, a suite's table, its
report, its W&B table) showing them with no edit anywhere else."""

from __future__ import annotations

import csv
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import spatial, stats
from testutils import run_python

from latentzoo.callbacks import LatentSampler
from latentzoo.metrics.registry import METRICS
from latentzoo.zoo import DENSITIES

EXAMPLES = Path(__file__).parents[1] / "docs" / "examples"
PLUGINS = ("one_nn", "full_gaussian")
ENV = {"PYTHONPATH": str(EXAMPLES), "LATENTZOO_PLUGINS": ",".join(PLUGINS)}


def run_latentzoo(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m latentzoo ARGS``, owned by the test (:func:`testutils.run_python`); without
    ``env`` the plugins variable is unset, with it the examples are on ``PYTHONPATH``."""
    base = {k: v for k, v in os.environ.items() if k != "LATENTZOO_PLUGINS"}
    base["WANDB_MODE"] = "offline"
    plugins = {k: v for k, v in (env or {}).items() if k != "PYTHONPATH"}
    return run_python("-m", "latentzoo", *args, cwd=cwd, env={**base, **plugins},
                      pythonpath=[EXAMPLES] if env else [], timeout=timeout)  # fmt: skip


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """The example modules, imported into registries the test throws away."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    with METRICS.isolated(), DENSITIES.isolated():
        modules = {}
        for name in PLUGINS:
            sys.modules.pop(name, None)
            modules[name] = importlib.import_module(name)
        yield modules
    for name in PLUGINS:
        sys.modules.pop(name, None)


def test_one_nn_accuracy_agrees_with_scipy_and_reads_its_known_values(examples) -> None:
    one_nn = METRICS.get("one_nn").compute
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=gen, dtype=torch.float64)
    fake = torch.randn(300, 8, generator=gen, dtype=torch.float64) * 1.2 + 0.4
    ours = one_nn(real, fake, chunk=128)  # chunks smaller than the pool: the offset path
    pool = np.concatenate([real.numpy(), fake.numpy()])
    _, idx = spatial.cKDTree(pool).query(pool, k=2)  # idx[:, 0] is the point itself
    label = np.arange(len(pool)) < len(real)
    correct = label[idx[:, 1]] == label
    assert float(ours["one_nn_accuracy"]) == pytest.approx(correct.mean(), abs=1e-12)
    assert float(ours["one_nn_real"]) == pytest.approx(correct[label].mean(), abs=1e-12)
    assert float(ours["one_nn_fake"]) == pytest.approx(correct[~label].mean(), abs=1e-12)
    assert 0.55 < correct.mean() < 0.95  # neither trivial value: the comparison has content
    same = one_nn(real, torch.randn(400, 8, generator=gen, dtype=torch.float64))
    assert float(same["one_nn_accuracy"]) == pytest.approx(0.5, abs=0.06)  # one distribution
    apart = one_nn(real, real + 100.0)
    assert float(apart["one_nn_accuracy"]) == 1.0
    copies = one_nn(real, real + 1e-6)  # memorised: every real point's neighbour is its copy
    assert float(copies["one_nn_real"]) == 0.0 and float(copies["one_nn_fake"]) == 0.0


def test_the_gaussian_sampler_fits_the_codes_moments_and_their_density(examples) -> None:
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    codes = torch.randn(20_000, 3, generator=gen, dtype=torch.float64) @ a.T + 2.0
    density = DENSITIES.resolve("gaussian")(3)
    density.fit(codes)
    cov = np.cov(codes.numpy(), rowvar=False)
    torch.testing.assert_close(density.mean, codes.mean(0))
    z = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    expected = stats.multivariate_normal(codes.mean(0).numpy(), cov + 1e-6 * np.eye(3)).logpdf(z)
    torch.testing.assert_close(density.log_prob(z), torch.from_numpy(expected))
    drawn = density.sample(20_000).double()
    assert np.abs(np.cov(drawn.numpy(), rowvar=False) - cov).max() < 0.15 * np.abs(cov).max()
    assert LatentSampler(kind="gaussian").build(3).__class__ is type(density)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch quickstart run on small synthetic data."""
    root = tmp_path_factory.mktemp("run")
    proc = run_latentzoo(
        ["fit", "--data.num_train", "400", "--data.val_size", "100", "--data.batch_size", "50",
         "--model.width", "8", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar",
         "false"], cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "runs/VAE-Synthetic/version_0/checkpoints/last.ckpt"


def test_evaluate_shows_the_new_metric_for_the_new_sampler(checkpoint: Path, tmp_path) -> None:
    out = tmp_path / "results.json"
    proc = run_latentzoo(
        ["evaluate", "--ckpt_path", str(checkpoint), "--sampler", "[prior, gaussian]",
         "--extractor", "pixels", "--num_samples", "200", "--num_real", "300",
         "--accelerator", "cpu", "--output", str(out), "--cache_dir", str(tmp_path / "cache")],
        cwd=tmp_path, env=ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"prior", "gaussian"}
    for row in rows.values():
        assert 0 <= row["one_nn_real_pixels"] <= 1 and 0.5 < row["one_nn_accuracy_pixels"] <= 1
    assert rows["prior"]["fid_pixels"] != rows["gaussian"]["fid_pixels"]
    assert "test/one_nn_accuracy" in proc.stdout and "one_nn_fake_pixels" in proc.stdout


@pytest.mark.slow
def test_the_example_suite_reports_the_new_metric_everywhere(tmp_path) -> None:
    out = tmp_path / "example"
    env = {**ENV, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = run_latentzoo(
        ["benchmark", str(EXAMPLES / "suite.yaml"), "--out", str(out),
         "--wandb_project", "latentzoo-tests"],
        cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    floor = ("real data", "train vs test")  # two real samples: the metrics' floor
    models = {(m, s) for m in ("VAE", "WAEGP") for s in ("prior", "gaussian")}
    by_key = {(r["model"], r["sampler"]): r for r in rows}
    assert set(by_key) == models | {floor}
    accuracy = {k: float(r["one_nn_accuracy_pixels_mean"]) for k, r in by_key.items()}
    assert all(0.5 < accuracy[k] <= 1 for k in models)
    # real against real is near chance, and below every model's samples
    assert abs(accuracy[floor] - 0.5) < 0.1 and accuracy[floor] < min(accuracy[k] for k in models)
    report = (out / "report.md").read_text()
    assert "one_nn_accuracy_pixels" in report and "one_nn_real_pixels" in report
    (table,) = out.glob("wandb/offline-run-*/files/media/table/results_*.table.json")
    columns = json.loads(table.read_text())["columns"]
    assert {"one_nn_accuracy_pixels_mean", "density_pixels_mean"} <= set(columns)


@pytest.mark.slow  # two evaluate processes, about 11 s
def test_the_plugins_variable_is_what_brings_them(tmp_path) -> None:
    """Without LATENTZOO_PLUGINS the command line knows neither example."""
    proc = run_latentzoo(["evaluate", "--list_metrics"], cwd=tmp_path)
    assert proc.returncode == 0 and "one_nn" not in proc.stdout
    assert "density_coverage" in proc.stdout  # built in
    proc = run_latentzoo(["evaluate", "--list_metrics"], cwd=tmp_path, env=ENV)
    assert proc.returncode == 0 and "one_nn" in proc.stdout
    assert os.environ.get("LATENTZOO_PLUGINS") is None

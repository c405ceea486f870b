"""``latentzoo benchmark`` run for real: killed mid-way and run again, collected after cells were
trained with plain ``latentzoo fit``, and with a cell whose training fails."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest
from benchmark.tiny import latentzoo
from testutils import started

ROWS = {("VAE", "prior"), ("VAE", "gmm"), ("WAE", "prior"), ("WAE", "gmm")}
FLOOR = ("real data", "train vs test")  # the first row: two real samples of the same size


def table_rows(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    lines = [line for line in (out / "results.csv").read_text().splitlines() if line[:1] != "#"]
    return {(r["model"], r["sampler"]): r for r in csv.DictReader(lines)}


def fingerprint(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, hashlib.sha1(path.read_bytes()).hexdigest()


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the benchmark ended ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


@pytest.mark.slow  # about 40 s: three trainings and four process starts
def test_killed_benchmark_skips_finished_cells_and_resumes_the_other(write_suite, tmp_path):
    # WAE trains long enough (30 epochs of 4 steps) to be caught after its first last.ckpt.
    suite = write_suite(trainer={"max_epochs": 30, "limit_train_batches": 4,
                                 "limit_val_batches": 1, "accelerator": "cpu"})  # fmt: skip
    out = tmp_path / "out"
    vae, wae = out / "cells" / "VAE__seed0", out / "cells" / "WAE__seed0"
    # One process group, the benchmark and its fit, killed as one when the block ends.
    with started("-m", "latentzoo", "benchmark", suite, "--out", out, cwd=tmp_path,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:  # fmt: skip
        wait_for(lambda: (vae / "scores" / "gmm.json").is_file(), proc, "scores of VAE")
        wae_last = wae / "version_0" / "checkpoints" / "last.ckpt"
        wait_for(wae_last.is_file, proc, "last.ckpt of WAE")
    assert not (wae / "trained.json").exists()  # it was killed while training
    vae_ckpt = fingerprint(vae / "version_0" / "checkpoints" / "last.ckpt")
    vae_trained = (vae / "trained.json").read_text()

    rerun = latentzoo("benchmark", str(suite), "--out", str(out), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "VAE__seed0: skipped (already scored)" in rerun.stdout
    assert "WAE__seed0: resumed and trained" in rerun.stdout
    assert fingerprint(vae / "version_0" / "checkpoints" / "last.ckpt") == vae_ckpt
    assert (vae / "trained.json").read_text() == vae_trained
    wae_trained = json.loads((wae / "trained.json").read_text())
    assert wae_trained["resumed"] is True and wae_trained["epochs"] == 30
    rows = table_rows(out)
    assert set(rows) == ROWS | {FLOOR}
    assert all(r["n_seeds"] == "1" and r["fid_pixels_mean"] for r in rows.values())
    report = (out / "report.md").read_text() + (out / "report.html").read_text()
    assert all(f"{m}__{s}" in report for m, s in ROWS)
    assert len(json.loads((out / "results.json").read_text())["rows"]) == len(ROWS | {FLOOR})


@pytest.mark.slow  # a fit and two benchmark runs, about 19 s
def test_collect_scores_cells_trained_with_plain_fit(write_suite, tmp_path):
    suite, out = write_suite(), tmp_path / "out"
    prepared = latentzoo("benchmark", str(suite), "--out", str(out), "--prepare", cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    configs = (out / "cells.txt").read_text().split()
    assert configs == [str(out / "cells" / c / "config.yaml") for c in ("VAE__seed0", "WAE__seed0")]
    fit = latentzoo("fit", "--config", configs[0], cwd=tmp_path)  # as one job of an array would
    assert fit.returncode == 0, fit.stderr[-2000:]

    collected = latentzoo("benchmark", str(suite), "--out", str(out), "--collect", cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr[-2000:]
    assert "VAE__seed0: trained before, scored" in collected.stdout
    assert "WAE__seed0: missing" in collected.stdout
    assert f"WAE__seed0 (new): latentzoo fit --config {configs[1]}" in collected.stdout
    assert not (out / "cells" / "WAE__seed0" / "version_0").exists()  # collect trains nothing
    trained = json.loads((out / "cells" / "VAE__seed0" / "trained.json").read_text())
    assert trained["epochs"] == 2 and "elsewhere" in trained["source"]
    rows = table_rows(out)
    assert set(rows) == ROWS | {FLOOR}
    assert rows["VAE", "gmm"]["n_seeds"] == "1" and rows["WAE", "gmm"]["n_seeds"] == "0"
    assert "WAE__seed0" in (out / "report.html").read_text()


@pytest.mark.slow  # a benchmark of two cells, about 18 s
@pytest.mark.parametrize("bad", [{"latent_dim": 0}])
def test_a_failing_cell_is_reported_and_the_others_run(write_suite, tmp_path, bad):
    models = [{"name": "Broken", "class_path": "VAE", "init_args": bad},
              {"name": "VAE", "class_path": "VAE"}]  # fmt: skip
    suite, out = write_suite(models=models, samplers=["prior"]), tmp_path / "out"
    run = latentzoo("benchmark", str(suite), "--out", str(out), cwd=tmp_path)
    assert run.returncode == 1
    assert "Broken__seed0: failed" in run.stdout and "VAE__seed0: trained, scored" in run.stdout
    failed = json.loads((out / "cells" / "Broken__seed0" / "failed.json").read_text())
    assert failed["exit_code"] == 2
    assert any("latent_dim must be >= 1" in line for line in failed["output_tail"])
    page = (out / "report.html").read_text()
    assert "Failed cells" in page and "Broken__seed0" in page
    assert set(table_rows(out)) == {FLOOR, ("Broken", "prior"), ("VAE", "prior")}

"""``latentzoo evaluate`` and ``latentzoo benchmark`` give the same numbers on the same
checkpoint, spec and seed: both call ``latentzoo.evaluate``, and each surface maps its options
onto the spec (the suite's ``metrics:`` and seed, the command's flags) the same way."""

from __future__ import annotations

import json

import pytest
from benchmark.tiny import latentzoo


@pytest.mark.slow  # about 40 s: a two-cell suite trained and scored, then one evaluate
def test_evaluate_gives_the_benchmarks_numbers(write_suite, tmp_path) -> None:
    suite = write_suite(models=[{"name": "VAE", "class_path": "latentzoo.zoo.VAE"}], seeds=[3])
    out = tmp_path / "out"
    proc = latentzoo("benchmark", str(suite), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cell = out / "cells" / "VAE__seed3"
    result = tmp_path / "evaluate.json"
    proc = latentzoo(
        "evaluate", "--ckpt_path", str(cell / "version_0/checkpoints/last.ckpt"),
        "--sampler", "[prior, gmm]", "--extractor", "pixels", "--num_samples", "200",
        "--num_real", "200", "--split", "test", "--seed", "3", "--output", str(result),
        "--cache_dir", str(tmp_path / "cache"), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(result.read_text())["rows"]
    for sampler in ("prior", "gmm"):
        scored = json.loads((cell / "scores" / f"{sampler}.json").read_text())["metrics"]
        assert scored.keys() == rows[sampler].keys()
        for key, value in scored.items():
            assert rows[sampler][key] == pytest.approx(value, rel=1e-6, nan_ok=True), key
        assert {"fid_pixels", "holes", "active_dims", "loss"} <= scored.keys()

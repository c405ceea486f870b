"""One process at a time in a benchmark's output folder: a second says who holds it, exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml
from benchmark.tiny import TINY_SUITE, latentzoo
from testutils import started

from latentzoo.benchmark.lock import FolderLockedError, hold


def test_a_second_holder_is_refused_with_the_first_ones_name(tmp_path) -> None:
    refused = pytest.raises(FolderLockedError, match=f"in use by process {os.getpid()} on ")
    with hold(tmp_path), refused, hold(tmp_path):
        pass
    with hold(tmp_path):  # released on leaving the block
        pass


@pytest.mark.slow  # two benchmark processes, about 10 s
def test_two_benchmark_runs_into_one_folder(tmp_path) -> None:
    suite = tmp_path / "suite.yaml"
    long = {**TINY_SUITE, "trainer": {"max_epochs": 1000, "limit_val_batches": 1}}
    suite.write_text(yaml.safe_dump(long))
    out = tmp_path / "out"
    with started("-m", "latentzoo", "benchmark", str(suite), "--out", str(out), cwd=tmp_path,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as first:  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = (out / ".lock").read_text() if (out / ".lock").is_file() else ""
            if text and json.loads(text)["pid"] == first.pid:
                break
            assert first.poll() is None, "the first run ended early"
            time.sleep(0.2)
        second = latentzoo("benchmark", str(suite), "--out", str(out), cwd=tmp_path)
        assert second.returncode == 2
        (line,) = second.stderr.strip().splitlines()
        assert f"{out} is in use by process {first.pid} on " in line
        assert "latentzoo benchmark" in line and first.poll() is None  # the first runs on

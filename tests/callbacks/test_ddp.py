"""Two CPU processes (DDP, gloo) give the same FID, KID and holes values as one process."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from testutils import run_python

SCRIPT = Path(__file__).with_name("ddp_script.py")
_spec = importlib.util.spec_from_file_location("ddp_script", SCRIPT)
assert _spec is not None and _spec.loader is not None
ddp_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ddp_script)  # the same code the subprocess runs, here in one process


def run_script(out: Path, *args: object) -> Any:
    """Run the DDP script in a subprocess (it launches its own ranks); what it wrote to ``out``."""
    proc = run_python(SCRIPT, out, *map(str, args), timeout=480)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow  # two DDP processes, about 10 s
def test_two_processes_match_one(tmp_path: Path) -> None:
    out = tmp_path / "ddp.json"
    two = run_script(out, tmp_path / "cache2")
    one = ddp_script.evaluate(1, str(tmp_path / "cache1"))
    assert two[-1] == {"real_computations": 1.0} == one[-1]  # the second evaluation used the cache
    for run_one, run_two in zip(one[:2], two[:2], strict=True):
        for key, value in run_one.items():
            assert run_two[key] == pytest.approx(value, rel=1e-5, abs=1e-9, nan_ok=True), key
    assert one[0] == pytest.approx(one[1], nan_ok=True)  # cache read back gives the same values


@pytest.mark.slow  # two DDP processes, about 9 s
def test_end_of_fit_evaluation_under_two_processes_matches_one(tmp_path: Path) -> None:
    # max_epochs=1 with every_n_epochs=5: the evaluation at the end of fit is the only one, and
    # it runs its collectives on both ranks (a hang here would time out).
    two = run_script(tmp_path / "fit.json", tmp_path / "two" / "cache", "2", "fit")
    one = ddp_script.fit_end_values(1, str(tmp_path / "one" / "cache"))
    assert set(two) == set(one) == {k.split("/", 1)[1] for k in ddp_script.KEYS}
    for key, value in one.items():
        assert two[key] == pytest.approx(value, rel=1e-5, abs=1e-9, nan_ok=True), key
    (written,) = (tmp_path / "two" / "logs" / "version_0").glob("metrics_val_step*.json")
    assert json.loads(written.read_text())["val/fid"] == pytest.approx(two["fid"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("prior", ["mog", "vamp", "flow"])
def test_learnable_priors_give_the_same_metrics_under_two_processes(tmp_path, prior) -> None:
    # fit: the VampPrior draws its pseudo-inputs from the data on every rank when fit starts
    two = run_script(tmp_path / "fit.json", tmp_path / "two" / "cache", "2", "fit", prior)
    one = ddp_script.fit_end_values(1, str(tmp_path / "one" / "cache"), prior)
    assert set(two) == set(one)
    for key, value in one.items():
        assert two[key] == pytest.approx(value, rel=1e-5, abs=1e-9, nan_ok=True), (prior, key)

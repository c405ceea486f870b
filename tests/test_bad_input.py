"""Every file ``latentzoo evaluate`` and ``latentzoo benchmark`` read fails in one line naming it.

Checkpoints, sample tensors and image folders are damaged hundreds of ways (cut short, random
bytes, a flipped bit, non-finite values): reading them either works or raises the evaluation's
``BadInputError`` naming the file, never another exception; one of each kind goes through the
command line, in a real process, and ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from datamodules.conftest import damaged_copies
from PIL import Image
from testutils import run_python, trainer

from latentzoo.benchmark.cellfiles import read_json
from latentzoo.evaluation import BadInputError, load_model, load_samples
from latentzoo.zoo import VAE


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "latentzoo", *args, cwd=cwd, timeout=300)


def one_line(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one line of stderr (exit status 2), holding each of ``words``."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small VAE checkpoint on (6,) vectors, in a folder without a run config."""
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    model = VAE(data_shape=(6,), latent_dim=2, width=4)
    t = trainer(max_epochs=1)
    t.strategy.connect(model)
    t.save_checkpoint(path)
    return path


def test_damaged_checkpoints_load_or_are_refused_naming_the_file(checkpoint, tmp_path) -> None:
    valid = checkpoint.read_bytes()
    path = tmp_path / "damaged.ckpt"
    outcomes: dict[tuple[str, str], int] = {}
    for kind, data in damaged_copies(valid, 200, seed=0, header=64):
        path.write_bytes(data)
        try:
            load_model(path)
            outcome = "loaded"
        except BadInputError as err:
            assert str(path) in str(err) and "\n" not in str(err), str(err)
            outcome = "refused"
        outcomes[kind, outcome] = outcomes.get((kind, outcome), 0) + 1
    assert outcomes.get(("truncated", "loaded"), 0) == 0
    assert outcomes.get(("random bytes", "loaded"), 0) == 0
    assert outcomes[("truncated", "refused")] == 50  # a quarter of the 200 copies each


def test_non_finite_weights_are_refused(checkpoint, tmp_path) -> None:
    state = torch.load(checkpoint, weights_only=True)
    name = next(iter(state["state_dict"]))
    state["state_dict"][name][0] = float("nan")
    torch.save(state, tmp_path / "nan.ckpt")
    with pytest.raises(BadInputError, match=f"nan.ckpt holds non-finite weights \\({name}"):
        load_model(tmp_path / "nan.ckpt")


def test_damaged_sample_tensors_load_or_are_refused(tmp_path) -> None:
    gen = np.random.default_rng(0)
    path = tmp_path / "samples.pt"
    torch.save(torch.rand(20, 1, 4, 4), path)
    valid = path.read_bytes()
    for kind, data in damaged_copies(valid, 120, seed=1, header=64):
        path.write_bytes(data)
        try:
            x = load_samples(path, (1, 4, 4))
            assert kind != "truncated" and torch.isfinite(x).all()
        except BadInputError as err:
            assert str(path) in str(err), str(err)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.rand(20, 1, 4, 4)
        x.view(-1)[gen.integers(0, x.numel())] = bad
        torch.save(x, path)
        with pytest.raises(BadInputError, match="non-finite values in 1 of 20 samples"):
            load_samples(path, (1, 4, 4))


def test_damaged_images_in_a_folder_are_refused_naming_the_image(tmp_path) -> None:
    rng = np.random.default_rng(2)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    valid = (tmp_path / "2.png").read_bytes()
    for kind, data in damaged_copies(valid, 80, seed=3, header=32):
        (tmp_path / "2.png").write_bytes(data)
        try:
            load_samples(tmp_path, (1, 8, 8))
        except BadInputError as err:
            assert "2.png" in str(err) or "differ in size" in str(err), str(err)
        else:
            assert kind not in ("truncated", "random bytes") or len(data) > 60


def test_damaged_results_files_read_as_absent(tmp_path) -> None:
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"metrics": {"fid_pixels": 1.0}}))
    valid = path.read_bytes()
    for _, data in damaged_copies(valid, 60, seed=4, header=8):
        path.write_bytes(data)
        found = read_json(path)
        assert found is None or isinstance(found, dict)


# -- through the command line -----------------------------------------------------------------


def test_a_truncated_checkpoint_is_one_line_naming_it(checkpoint, tmp_path) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(checkpoint.read_bytes()[:5000])
    proc = run(["evaluate", "--ckpt_path", str(broken), "--extractor", "pixels"], tmp_path)
    one_line(proc, str(broken), "not a readable checkpoint")  # before any word about --data


def test_samples_with_a_nan_are_one_line(tmp_path) -> None:
    x = torch.rand(30, 128)
    x[7, 3] = float("nan")
    torch.save(x, tmp_path / "x.pt")
    proc = run(["evaluate", "--samples", "x.pt", "--data", "Synthetic", "--extractor", "pixels",
                "--num_real", "50"], tmp_path)  # fmt: skip
    one_line(proc, "x.pt", "non-finite values in 1 of 30 samples")


def test_an_unreadable_image_is_one_line_naming_it(tmp_path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "1.png").write_bytes(b"not a png at all")
    proc = run(["evaluate", "--samples", str(folder), "--data", "FashionMNIST"], tmp_path)
    one_line(proc, "1.png")

"""The base class's own checks: a training split too small for one batch is refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from testutils import run_python

from latentzoo.datamodules import Synthetic


def small(num_train: int, val_size: int, batch_size: int) -> Synthetic:
    return Synthetic(
        latent_dim=2, data_dim=4, num_train=num_train, num_test=10, val_size=val_size,
        batch_size=batch_size,
    )  # fmt: skip


def test_split_smaller_than_a_batch_is_refused_naming_the_sizes() -> None:
    dm = small(num_train=100, val_size=40, batch_size=64)  # 60 training samples < 64
    with pytest.raises(ValueError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "has 60 samples" in message and "val_size=40" in message
    assert "batch_size=64" in message and "0 steps" in message
    dm.setup("validate")  # validation needs no full training batch
    dm.setup("test")


def test_split_of_exactly_one_batch_trains() -> None:
    dm = small(num_train=104, val_size=40, batch_size=64)
    dm.setup("fit")
    assert len(dm.train_dataloader()) == 1


@pytest.mark.parametrize(
    ("num_train", "refused"),
    # 2 processes, batch 32: a process gets n // 2 samples (the sampler drops the remainder)
    [(10 + 63, True), (10 + 62, True), (10 + 64, False)],
)
def test_ddp_needs_a_batch_per_process(num_train: int, refused: bool) -> None:
    dm = small(num_train=num_train, val_size=10, batch_size=32)
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1, state=SimpleNamespace(fn="fit"))
    if refused:
        with pytest.raises(ValueError, match=r"per process \(2 processes get 31 each\)"):
            dm.setup("fit")
    else:
        dm.setup("fit")
        assert len(dm.train_dataloader()) == 1  # what the check promised, on rank 1


def test_split_read_by_a_test_run_is_not_refused() -> None:
    """Callbacks of ``latentzoo test`` set up "fit" to read the training split; nothing trains."""
    dm = small(num_train=100, val_size=40, batch_size=64)
    dm.trainer = SimpleNamespace(world_size=1, state=SimpleNamespace(fn="test"))
    dm.setup("fit")
    assert dm.train_set is not None and len(dm.train_set) == 60


def test_cli_refuses_a_run_that_would_train_zero_steps(tmp_path: Path) -> None:
    """Seen through the CLI, the run used to train 0 steps and exit 0."""
    result = run_python(
        "-m", "latentzoo", "fit", "--data", "Synthetic",
        "--data.num_train", "300", "--data.val_size", "200", "--data.batch_size", "128",
        "--trainer.max_epochs", "1", "--trainer.logger", "false", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "has 100 samples after holding out val_size=200" in output, output[-2000:]
    assert "batch_size=128" in output and "0 steps" in output

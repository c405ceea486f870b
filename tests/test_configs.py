"""Every YAML in configs/ parses, and those whose data exist here train for a couple of steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from testutils import FASHION_MNIST_DEBIAN

from latentzoo.cli import run

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
# Data sets that need no download here.
LOCAL = {"Synthetic"} | ({"FashionMNIST"} if FASHION_MNIST_DEBIAN.is_dir() else set())


def data_class(path: Path) -> str:
    return yaml.safe_load(path.read_text())["data"]["class_path"].rsplit(".", 1)[-1]


def test_there_is_a_config_per_model_and_data_set() -> None:
    names = {p.stem for p in CONFIGS}
    for model in ("vae", "beta_vae"):
        for data in ("synthetic", "mnist", "fashion_mnist", "cifar10", "celeba"):
            assert f"{model}_{data}" in names
    assert "quickstart" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_and_round_trips(path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", str(path), "--print_config"])
    assert exit_info.value.code in (None, 0)
    printed = yaml.safe_load(capsys.readouterr().out)
    original = yaml.safe_load(path.read_text())
    assert printed["model"] == original["model"]
    assert printed["data"] == original["data"]


@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if data_class(p) in LOCAL], ids=lambda p: p.stem
)
def test_config_trains(path: Path, in_tmp: Path) -> None:
    cli = run(["fit", "--config", str(path), "--trainer.fast_dev_run", "2",
               "--data.init_args.data_dir", str(in_tmp)])  # fmt: skip
    assert cli is not None
    # fast_dev_run stops after 2 optimizer steps: one batch of an adversarial model already
    # takes that many, so count both
    assert cli.trainer.global_step >= 2
    assert cli.trainer.fit_loop.epoch_loop.batch_progress.total.completed >= 1
    assert cli.model.data_shape == cli.datamodule.data_shape

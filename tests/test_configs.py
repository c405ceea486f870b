"""Every YAML in configs/ is what make_configs.py writes, parses to the run it stands for, and,
where its data exist here, trains for a couple of steps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from testutils import FASHION_MNIST_DEBIAN

from latentzoo.cli import run

CONFIG_DIR = Path(__file__).parents[1] / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
_spec = importlib.util.spec_from_file_location("make_configs", CONFIG_DIR / "make_configs.py")
assert _spec is not None and _spec.loader is not None
make_configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_configs)
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


def test_every_config_is_generated() -> None:
    assert {p.stem for p in CONFIGS} == set(make_configs.runs())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_what_make_configs_writes(path: Path) -> None:
    assert path.read_text() == make_configs.render(path.stem), (
        f"{path} is stale: run python configs/make_configs.py"
    )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_to_the_run_it_stands_for(path: Path, capsys) -> None:
    """Read by the CLI's parser, the short file gives every setting of the full run."""
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", str(path), "--print_config"])
    assert exit_info.value.code in (None, 0)
    printed = yaml.safe_load(capsys.readouterr().out)
    model, data, args = make_configs.runs()[path.stem]
    assert printed == make_configs.full_config(model, data, tuple(args))


def test_configs_hold_only_the_runs_own_settings() -> None:
    text = (CONFIG_DIR / "vae_mnist.yaml").read_text()
    config = yaml.safe_load(text)
    assert set(config) == {"trainer", "model", "data"}  # no checkpoint, seed or ckpt_path
    assert set(config["trainer"]) == {"callbacks"}  # not max_epochs=20, the CLI's default
    assert config["model"]["init_args"] == {"latent_dim": 16, "likelihood": "bernoulli"}
    for key in ("model_registry", "enable_autolog_hparams", "decoder_sigma", "TensorBoardLogger"):
        assert key not in text  # defaults, some known to recent Lightning releases only


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

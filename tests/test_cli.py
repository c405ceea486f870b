"""The ``latentzoo`` command, through its installed entry point and as ``python -m``."""

from __future__ import annotations

import csv
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
import yaml
from testutils import run_python

from latentzoo.cli import main, run
from latentzoo.zoo import BetaVAE

SMALL = ["--data.num_train", "400", "--data.val_size", "100", "--data.batch_size", "50"]


def console_main():
    (ep,) = entry_points(group="console_scripts", name="latentzoo")
    return ep.load()


def test_console_script_is_the_cli_main() -> None:
    assert console_main() is main


def test_fast_dev_run_through_the_entry_point(in_tmp: Path) -> None:
    console_main()(["fit", "--model", "BetaVAE", *SMALL, "--trainer.fast_dev_run", "2"])
    cli = run(["fit", "--model", "BetaVAE", *SMALL, "--data.data_dim", "24",
               "--trainer.fast_dev_run", "2"])  # fmt: skip
    assert cli is not None
    assert isinstance(cli.model, BetaVAE)
    assert cli.model.data_shape == (24,)  # linked from the datamodule
    assert cli.trainer.global_step == 2


def test_fit_saves_config_and_checkpoints_then_resumes_from_last(in_tmp: Path) -> None:
    common = ["fit", "--model", "VAE", *SMALL, "--trainer.limit_val_batches", "1",
              "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", "runs",
              "--trainer.log_every_n_steps", "1"]  # fmt: skip
    main([*common, "--trainer.max_epochs", "1"])  # 300 training samples / 50 = 6 steps
    run = in_tmp / "runs" / "VAE-Synthetic"
    config = yaml.safe_load((run / "version_0" / "config.yaml").read_text())
    assert config["model"]["class_path"].endswith("VAE")
    assert config["data"]["init_args"]["num_train"] == 400
    ckpts = {p.name for p in (run / "version_0" / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("epoch000-") for n in ckpts)
    last = run / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 6

    main([*common, "--trainer.max_epochs", "2", "--ckpt_path", "last"])  # a run of its own
    state = torch.load(run / "version_1" / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 12
    with open(run / "version_1" / "metrics.csv") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert steps and min(steps) >= 6  # the second run went on from step 6, not from 0


def test_data_shape_is_linked_into_the_model(in_tmp: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--data", "Synthetic", "--data.data_dim", "48", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert "data_shape" not in printed["model"]["init_args"]  # linked, not a user setting


def test_models_command_lists_the_zoo(capsys) -> None:
    main(["models"])
    out = capsys.readouterr().out
    assert "VAE" in out and "latentzoo.zoo.beta_vae.BetaVAE" in out


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    proc = run_python("-m", "latentzoo", "fit", "--model", "NoSuchModel", cwd=tmp_path)
    assert proc.returncode != 0
    assert "NoSuchModel" in proc.stderr


def test_a_crash_keeps_its_progress_in_last_ckpt(in_tmp: Path) -> None:
    crash = ["--trainer.callbacks+=testutils.CrashAtStep", "--trainer.callbacks.step", "8"]
    quiet = ["--trainer.enable_progress_bar", "false"]  # a crashed run's bar prints at exit
    args = ["fit", "--model", "VAE", *SMALL, "--trainer.max_epochs", "3", *crash, *quiet]
    with pytest.raises(RuntimeError, match="simulated crash at step 8"):
        main(args)
    last = in_tmp / "runs" / "VAE-Synthetic" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 8  # mid-epoch 2, not epoch 1's 6


def test_switching_model_takes_that_models_own_defaults(capsys) -> None:
    """A default model class must not leak its init_args (lr, width) into another class."""
    with pytest.raises(SystemExit):
        main(["fit", "--model", "WAEGP", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].endswith("WAEGP")
    assert printed["model"]["init_args"]["lr"] == 5e-4  # WAEGP's default, not the VAE's 1e-3


def test_without_model_or_data_it_is_the_quickstart(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--data.num_train", "500", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].endswith(".VAE")
    assert printed["data"]["class_path"].endswith(".Synthetic")
    assert printed["data"]["init_args"]["num_train"] == 500


def test_callbacks_resolve_by_short_name(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--trainer.callbacks+=HolesCallback", "--trainer.callbacks.epsilon", "0.05",
              "--print_config"])  # fmt: skip
    (callback,) = yaml.safe_load(capsys.readouterr().out)["trainer"]["callbacks"]
    assert callback["class_path"] == "latentzoo.callbacks.HolesCallback"
    assert callback["init_args"]["epsilon"] == 0.05


def test_fit_ends_with_a_summary_of_what_it_measured(in_tmp: Path, capsys) -> None:
    main(["fit", *SMALL, "--trainer.max_epochs", "1", "--trainer.callbacks+=ActiveDims"])
    out = capsys.readouterr().out
    assert "latentzoo: VAE on Synthetic, 1 epochs" in out
    assert "val/active_dims" in out and "val/loss" in out
    last = Path("runs") / "VAE-Synthetic" / "version_0" / "checkpoints" / "last.ckpt"
    assert f"{last} (step 6, end of epoch 0)" in out


def test_packaged_configs_are_found_by_name_outside_the_source_tree(in_tmp: Path) -> None:
    from latentzoo.cli import CONFIGS_DIR, with_packaged_configs

    tmp_path = in_tmp  # no configs/ folder here: the names must come from the package
    packaged = str(CONFIGS_DIR / "quickstart.yaml")
    for given in ("quickstart", "quickstart.yaml", "configs/quickstart.yaml"):
        assert with_packaged_configs(["fit", "--config", given]) == ["fit", "--config", packaged]
        assert with_packaged_configs(["fit", f"--config={given}"]) == [
            "fit",
            f"--config={packaged}",
        ]
    mine = tmp_path / "quickstart.yaml"
    mine.write_text("trainer: {max_epochs: 1}\n")
    assert with_packaged_configs(["fit", "--config", str(mine)]) == ["fit", "--config", str(mine)]
    proc = run_python("-m", "latentzoo", "fit", "--config", "lmgae_synthetic", "--print_config",
                      cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "class_path: latentzoo.zoo.LMGAE" in proc.stdout  # the packaged file's model

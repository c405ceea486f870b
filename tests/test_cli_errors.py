"""Command-line mistakes end in one sentence that says what was wrong and what to do.

The cases found by trying the CLI as a new user run ``python -m latentzoo`` in a real process;
the did-you-mean variants call ``main`` in this one, which takes a second instead of five.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from jsonargparse import Namespace
from testutils import run_python

from latentzoo.cli import main, run
from latentzoo.datamodules import Synthetic
from latentzoo.loading import CheckpointMismatchError, check_checkpoint_matches, given_model_keys
from latentzoo.zoo import VAE

DUMP = ("Union", "subtypes", "Given value type", "Traceback", "usage:")
TINY_DATA = ["--data.num_train", "64", "--data.val_size", "16", "--data.num_test", "16",
             "--data.batch_size", "16", "--data.data_dim", "12", "--data.hidden", "8"]  # fmt: skip
QUIET = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]  # fmt: skip


def latentzoo(*args: str, cwd: Path) -> tuple[int, str]:
    """Exit status and stdout + stderr of ``python -m latentzoo ARGS`` run in ``cwd``."""
    proc = run_python("-m", "latentzoo", *args, cwd=cwd, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def assert_one_line_error(output: str, *expected: str) -> None:
    error_lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, output
    for text in expected:
        assert text in error_lines[0], output
    for word in DUMP:
        assert word not in output, output
    assert len(output.splitlines()) <= 3, output  # the error, and Lightning's "Seed set to 0"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.latent_dim", "0"],
         ["--model VAE: latent_dim must be >= 1, got 0", "latentzoo fit --model.help VAE"]),
        pytest.param(["--model", "BetaVAE", "--model.beta", "-1"],
                     ["--model BetaVAE: beta, gamma and capacity_max must be >= 0, got -1.0"],
                     marks=pytest.mark.slow),  # each case a CLI subprocess, about 6 s
        pytest.param(["--data.batch_size", "0"],
                     ["--data Synthetic: batch_size must be >= 1, got 0", "--data.help Synthetic"],
                     marks=pytest.mark.slow),
        (["--model", "VAEE"],
         ["--model VAEE: no such model; did you mean VAE", "WAEGP", "latentzoo models"]),
        pytest.param(["--model.latent_dims", "8"],
                     ["--model.latent_dims is not an argument of VAE; did you mean "
                      "--model.latent_dim?"],
                     marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_argument_errors_are_one_sentence_with_exit_status_2(
    args: list[str], expected: list[str], tmp_path: Path
) -> None:
    status, output = latentzoo("fit", *args, "--trainer.max_steps", "1", cwd=tmp_path)
    assert status == 2
    assert_one_line_error(output, *expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data", "Synth"], "--data Synth: no such data set; did you mean Synthetic?"),
        (["--data.batchsize", "3"], "did you mean --data.batch_size?"),
        (["--trainer.max_epohcs", "3"],
         "unrecognized argument --trainer.max_epohcs; did you mean --trainer.max_epochs"),
        (["--model.likelihood", "gauss"],
         "--model.likelihood: expected one of 'bernoulli', 'gaussian_fixed'"),
        (["--model.latent_dim", "abc"], "--model.latent_dim: expected int, got abc"),
        (["--seed_everything", "x"], "--seed_everything: expected bool or int, got x"),
        (["--trainer.callbacks+=HolesCalback"], "did you mean HolesCallback"),
        (["--trainer.callbacks+=HolesCallback", "--trainer.callbacks.epsilo", "0.1"],
         "did you mean --trainer.callbacks.epsilon?"),
        (["--trainer.callbacks+=HolesCallback", "--trainer.callbacks.epsilon", "7"],
         "--trainer.callbacks HolesCallback: epsilon must be in (0, 1), got 7.0"),
    ],
)  # fmt: skip
def test_mistakes_name_the_closest_right_thing(
    args: list[str], expected: str, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--trainer.max_steps", "1", *QUIET])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert_one_line_error(captured.out + captured.err, expected)


def test_help_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.help", "BetaVAE"])
    assert exit_info.value.code == 0
    assert "--model.beta" in capsys.readouterr().out


# -- a checkpoint against --model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def vae_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` of a VAE (latent_dim=3) trained 2 steps by ``latentzoo fit``."""
    folder = tmp_path_factory.mktemp("vae_run")
    status, output = latentzoo(
        "fit", "--model", "VAE", "--model.latent_dim", "3", "--model.width", "4", *TINY_DATA,
        *QUIET, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", cwd=folder,
    )  # fmt: skip
    assert status == 0, output
    (last,) = folder.rglob("last.ckpt")
    return last


def test_a_checkpoint_of_another_class_than_model_is_an_error(
    vae_checkpoint: Path, tmp_path: Path
) -> None:
    status, output = latentzoo("test", "--model", "LMGAE", "--ckpt_path", str(vae_checkpoint),
                               *TINY_DATA, *QUIET, cwd=tmp_path)  # fmt: skip
    assert status == 2
    assert_one_line_error(
        output, f"checkpoint {vae_checkpoint} holds a VAE (latent_dim=3)",
        "but --model LMGAE asks for a LMGAE", "drop it",
    )  # fmt: skip


def test_a_checkpoint_that_contradicts_a_model_argument_is_an_error(
    vae_checkpoint: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--model.latent_dim", "5", "--ckpt_path", str(vae_checkpoint),
              *TINY_DATA, *QUIET])  # fmt: skip
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert_one_line_error(
        captured.out + captured.err,
        "holds a VAE (latent_dim=3), but --model.latent_dim sets latent_dim=5",
    )


def test_a_config_files_model_section_counts_as_given(
    vae_checkpoint: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = in_tmp / "wae.yaml"
    config.write_text(yaml.safe_dump({"model": "WAEGP", "data": {"class_path": "Synthetic"}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--config", str(config), "--ckpt_path", str(vae_checkpoint), *TINY_DATA])
    assert exit_info.value.code == 2
    assert f"but {config} asks for a WAEGP" in capsys.readouterr().err


def test_what_was_not_given_comes_from_the_checkpoint(vae_checkpoint: Path, in_tmp: Path) -> None:
    """No --model (the quickstart's VAE is not the user's) and a matching one both test."""
    for model_args in ([], ["--model", "VAE", "--model.width", "4"]):
        main(["test", *model_args, "--ckpt_path", str(vae_checkpoint), *TINY_DATA, *QUIET])


def test_fit_resumes_from_a_checkpoint_of_the_same_model(vae_checkpoint: Path, in_tmp: Path):
    """Resumed at its last step, the run holds the checkpoint's weights (a new one would not)."""
    cli = run(["fit", "--model", "VAE", "--model.latent_dim", "3", "--ckpt_path",
               str(vae_checkpoint), "--seed_everything", "1", *TINY_DATA, *QUIET,
               "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1"])  # fmt: skip
    assert cli is not None and cli.trainer.global_step == 2
    saved = torch.load(vae_checkpoint, weights_only=True)["state_dict"]
    for key, value in cli.model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_a_python_checkpoint_is_checked_by_the_class_it_records(tmp_path: Path) -> None:
    model = VAE(data_shape=(12,), latent_dim=3, width=4)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(model, datamodule=Synthetic(data_dim=12, hidden=8, num_train=32, num_test=8,
                                            val_size=16, batch_size=16))  # fmt: skip
    path = tmp_path / "vae.ckpt"
    trainer.save_checkpoint(path)
    asked = Namespace(class_path="latentzoo.zoo.WAEGP", init_args=Namespace(latent_dim=3))
    with pytest.raises(CheckpointMismatchError, match=r"holds a VAE .* asks for a WAEGP"):
        check_checkpoint_matches(path, asked, {"class_path": "--model WAEGP"})
    check_checkpoint_matches(path, asked, {"latent_dim": "--model.latent_dim"})  # agrees


def test_given_model_keys_reads_flags_json_and_config_files(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"class_path": "VAE", "init_args": {"lr": 0.1}}}))
    args = ["--config", str(config), "--model.init_args.width=8", "--model",
            '{"init_args": {"latent_dim": 4}}', "--model.help", "VAE"]  # fmt: skip
    assert given_model_keys(args, "fit") == {
        "class_path": str(config),
        "lr": str(config),
        "width": "--model.width",
        "latent_dim": '--model {"init_args": {"latent_dim": 4}}',
    }
    assert given_model_keys(["--data", "Synthetic", "--trainer.max_steps", "1"], "fit") == {}

"""PeriodicEvaluation: when it runs (the period, and always at the end of fit), where its values
go (callback_metrics, loggers, a JSON file at once), progress bars, and the worked example."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor

from latentzoo.callbacks import HolesCallback, base
from latentzoo.datamodules import InMemoryDataModule, Synthetic
from latentzoo.zoo import VAE

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "latent_norm.py"


class CountingHoles(HolesCallback):
    """HolesCallback that remembers the global step of each evaluation."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(num_prior=100, num_reference=20, picture=False, **kwargs)
        self.steps: list[int] = []

    def evaluate(self, trainer, model, stage):  # type: ignore[no-untyped-def]
        self.steps.append(trainer.global_step)
        return super().evaluate(trainer, model, stage)


def fit(tmp_path: Path, callback: L.Callback, **kwargs: Any) -> L.Trainer:
    trainer = L.Trainer(
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback],
        **kwargs,
    )
    data = Synthetic(latent_dim=2, data_dim=6, num_train=400, val_size=100, batch_size=50)
    trainer.fit(VAE(data_shape=(6,), latent_dim=2, width=4), data)  # 6 steps per epoch
    return trainer


def csv_values(trainer: L.Trainer, key: str) -> list[float]:
    with open(Path(trainer.log_dir) / "metrics.csv") as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def test_a_fit_shorter_than_the_period_ends_with_one_evaluation(tmp_path: Path) -> None:
    cb = CountingHoles(every_n_epochs=5)
    trainer = fit(tmp_path, cb, max_epochs=1)
    assert cb.steps == [6]  # no validation epoch was due: evaluated once, at the end of fit
    holes = float(trainer.callback_metrics["val/holes"])
    written = json.loads((Path(trainer.log_dir) / "metrics_val_step6.json").read_text())
    assert written["val/holes"] == pytest.approx(holes)
    assert csv_values(trainer, "val/holes") == [pytest.approx(holes)]


def test_no_second_evaluation_when_the_last_epoch_was_due(tmp_path: Path) -> None:
    cb = CountingHoles(every_n_epochs=2)
    fit(tmp_path, cb, max_epochs=2, limit_train_batches=2)
    assert cb.steps == [4]


def test_max_steps_stopping_mid_epoch_still_evaluates(tmp_path: Path) -> None:
    cb = CountingHoles(every_n_epochs=1)
    trainer = fit(tmp_path, cb, max_steps=9)  # epoch 0 ends at step 6 (evaluated), stop at 9
    assert cb.steps == [6, 9]
    assert (Path(trainer.log_dir) / "metrics_val_step9.json").is_file()
    assert len(csv_values(trainer, "val/holes")) == 2


def test_fast_dev_run_adds_no_evaluation_at_the_end(tmp_path: Path) -> None:
    cb = CountingHoles(every_n_epochs=5)
    fit(tmp_path, cb, fast_dev_run=2)  # a check that training runs, not a run to measure
    assert cb.steps == []


@pytest.mark.parametrize("bar", [True, False])
def test_progress_bar_on_rank_zero_unless_the_trainer_hides_its_own(
    bar: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(base, "PROGRESS_DELAY_S", 0.0)  # show it however short the work
    trainer = L.Trainer(logger=False, enable_progress_bar=bar, enable_model_summary=False,
                        callbacks=[CountingHoles()], default_root_dir=tmp_path)  # fmt: skip
    data = Synthetic(latent_dim=2, data_dim=6, num_train=400, val_size=100, batch_size=50)
    trainer.test(VAE(data_shape=(6,), latent_dim=2, width=4), data, verbose=False)
    assert ("CountingHoles: train data" in capsys.readouterr().err) is bar


class Rings(InMemoryDataModule):
    """2-d points at radius 5 (training split) or 3 (test split)."""

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (2,)

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        angle = torch.rand(300, generator=torch.Generator().manual_seed(int(train))) * 2 * math.pi
        radius = 5.0 if train else 3.0
        return radius * torch.stack([angle.cos(), angle.sin()], 1), torch.zeros(300)


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("latent_norm", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prior_norm_is_the_chi_mean() -> None:
    example = load_example()
    assert example.prior_norm(1) == pytest.approx(math.sqrt(2 / math.pi))
    assert example.prior_norm(2) == pytest.approx(math.sqrt(math.pi / 2))
    z = torch.randn(200_000, 16, generator=torch.Generator().manual_seed(0))
    assert example.prior_norm(16) == pytest.approx(float(z.norm(dim=1).mean()), rel=2e-3)


def test_worked_example_logs_the_norm_of_a_known_encoder(tmp_path: Path) -> None:
    example = load_example()
    model = VAE(data_shape=(2,), latent_dim=2, width=4)
    model.encode = lambda x: 2 * x  # type: ignore[method-assign]  # codes of norm 2 * radius
    callback = example.LatentNorm(num_inputs=50)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[callback], default_root_dir=tmp_path)  # fmt: skip
    trainer.validate(model, Rings(val_size=100), verbose=False)
    assert float(trainer.callback_metrics["val/latent_norm"]) == pytest.approx(10.0)  # val: r=5
    trainer.test(model, Rings(val_size=100), verbose=False)
    assert float(trainer.callback_metrics["test/latent_norm"]) == pytest.approx(6.0)  # test: r=3
    ratio = float(trainer.callback_metrics["test/latent_norm_ratio"])
    assert ratio == pytest.approx(6.0 / math.sqrt(math.pi / 2))

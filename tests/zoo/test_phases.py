"""The phase engine: one global_step per batch for every model, logging, and its own errors."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from latentzoo.zoo import LMGAE, VAEGAN, WAEGP, create_model, list_models
from latentzoo.zoo.phases import Phase

# Models that need more than the shared arguments to reach every phase in a short run.
EXTRA = {"TwoStageVAE": {"stage1_epochs": 1, "stage2_epochs": 5, "stage2_width": 4},
         "WAEGP": {"critic_width": 8}, "LMGAE": {"critic_width": 8}}  # fmt: skip
# Optimizer steps per batch of the built-in models at their defaults (n_critic = 5).
# (WAE-GP and LMGAE at their default, latentzoo's, recipe: every phase on every batch, AE, G and
# 5 critic steps, then LMGAE's mask; the authors' recipe takes one step of its cycle a batch.)
STEPS_PER_BATCH = {"VAE": 1, "BetaVAE": 1, "WAEGP": 7, "LMGAE": 8, "VAEGAN": 3,
                   "TwoStageVAE": 1}  # fmt: skip


def flat_data(n: int = 24, batch_size: int = 8) -> DataLoader:
    x = torch.rand(n, 8)
    return DataLoader(TensorDataset(x, torch.zeros(n)), batch_size=batch_size)


class CountSteps(L.Callback):
    """Training batches seen, and optimizer steps (with their hooks) per batch."""

    def __init__(self) -> None:
        self.batches = 0
        self.steps: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.steps.append(0)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # type: ignore[no-untyped-def]
        self.steps[-1] += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.batches += 1


def trainer(**kw: object) -> L.Trainer:
    defaults: dict[str, object] = {"accelerator": "cpu", "logger": False,
        "enable_checkpointing": False, "enable_progress_bar": False,
        "enable_model_summary": False, "limit_val_batches": 0}  # fmt: skip
    return L.Trainer(**{**defaults, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list_models())
def test_one_global_step_is_one_batch_for_every_model(name: str) -> None:
    # 3 batches an epoch, 7 steps: the run crosses two epochs (and the 2-stage VAE's stages).
    model = create_model(name, data_shape=(8,), latent_dim=2, width=4, **EXTRA.get(name, {}))
    count = CountSteps()
    t = trainer(max_steps=7, callbacks=[count])
    t.fit(model, flat_data())
    assert count.batches == 7
    assert t.global_step == 7
    # Every optimizer step, counted or not, ran Lightning's hooks (plugins: at least one).
    if name in STEPS_PER_BATCH:
        assert count.steps == [STEPS_PER_BATCH[name]] * 7, count.steps
    else:
        assert min(count.steps) >= 1


@pytest.mark.parametrize(("recipe", "steps"), [("latentzoo", [5, 5, 15, 5]),
                                               ("authors", [2, 5, 1, 1])])  # fmt: skip
def test_lmgae_schedules_and_optimizer_states_count_steps(recipe: str, steps: list[int]) -> None:
    model = create_model("LMGAE", data_shape=(8,), latent_dim=2, width=4, n_critic=3,
                         critic_width=8, recipe=recipe)  # fmt: skip
    t = trainer(max_steps=9 if recipe == "authors" else 5)
    t.fit(model, flat_data())
    # latentzoo: 5 batches of AE, G, C x 3, mask; authors: 9 batches, 1.5 cycles of AE, C x 3, G, M
    assert int(model.mask_steps) == (1 if recipe == "authors" else 5)  # type: ignore[arg-type]
    counts = [{int(s["step"]) for s in o.state.values()} for o in t.optimizers]
    assert counts == [{n} for n in steps]


class Spy:
    """Records, for every phase loss call, the phase, its data and the prior draws it made."""

    def __init__(self, model: LMGAE) -> None:
        self.calls: list[tuple[str, torch.Tensor, list[torch.Tensor]]] = []
        self.draws: list[torch.Tensor] = []
        draw = model.sample_prior
        model.sample_prior = lambda n: self._draw(draw(n))  # type: ignore[method-assign]
        phases = model.phases()
        spied = [dataclasses.replace(p, loss=self._wrap(p.name, p.loss)) for p in phases]
        model.phases = lambda: spied  # type: ignore[method-assign]

    def _draw(self, z: torch.Tensor) -> torch.Tensor:
        self.draws.append(z)
        return z

    def _wrap(self, name, loss):  # type: ignore[no-untyped-def]
        def spied(x: torch.Tensor) -> dict[str, torch.Tensor]:
            self.draws = []
            out = loss(x)
            self.calls.append((name, x.clone(), self.draws))
            return out

        return spied


def test_authors_recipe_takes_one_step_a_batch_each_on_its_own_batch_and_prior_draw() -> None:
    """MaskAAE: a fresh batch and fresh z for the auto-encoder, each critic step, the generator
    and the mask; one optimizer step per training batch, in that order, cycle after cycle."""
    torch.manual_seed(0)
    model = LMGAE(data_shape=(8,), latent_dim=2, width=4, critic_width=8, recipe="authors")
    spy = Spy(model)
    count = CountSteps()
    x = torch.rand(64, 8)
    t = trainer(max_steps=10, callbacks=[count])
    t.fit(model, DataLoader(TensorDataset(x, torch.zeros(64)), batch_size=4))
    names = [name for name, _, _ in spy.calls]
    assert names == ["autoencoder", *["critic"] * 5, "generator", "mask", "autoencoder", "critic"]
    for (_, seen, _), batch in zip(spy.calls, x.split(4), strict=False):
        torch.testing.assert_close(seen, batch)  # each step its own loader batch
    assert count.steps == [1] * 10 and t.global_step == 10
    draws = {name: d for name, _, d in spy.calls}
    assert len(draws["critic"]) == 1 and len(draws["mask"]) == 1  # W and GP share one draw
    every = [d[0] for _, _, d in spy.calls if d]
    assert len(every) == 7 and len({float(d.sum()) for d in every}) == 7  # all fresh
    assert int(model.mask_steps) == model.cycles_done() == 1  # one cycle of 8 batches done
    # every phase's latest terms are logged, whichever phase ran on the batch
    for key in ("train/recon", "train/gp", "train/generator", "train/active_dims"):
        assert key in t.callback_metrics, key


def test_latentzoo_recipe_steps_every_phase_on_the_same_batch() -> None:
    model = LMGAE(data_shape=(8,), latent_dim=2, width=4, recipe="latentzoo")
    spy = Spy(model)
    x = torch.rand(8, 8)
    trainer(max_steps=1).fit(model, DataLoader(TensorDataset(x, torch.zeros(8)), batch_size=8))
    assert len(spy.calls) == 8 and all(torch.equal(seen, x) for _, seen, _ in spy.calls)


def test_terms_are_logged_every_n_batches_with_the_batch_as_step(tmp_path: Path) -> None:
    model = WAEGP(data_shape=(8,), latent_dim=2, width=4, n_critic=2, critic_width=8)
    t = trainer(max_steps=9, logger=CSVLogger(tmp_path), log_every_n_steps=3)
    t.fit(model, flat_data(n=80))
    assert t.logger is not None and t.logger.log_dir is not None
    with open(Path(t.logger.log_dir) / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    assert [int(r["step"]) for r in rows] == [2, 5, 8]
    for row in rows:
        for key in ("train/recon", "train/gp", "train/autoencoder_loss", "train/critic_loss"):
            assert row[key] not in ("", None), (row["step"], key)
        assert row["train/loss"] == row["train/autoencoder_loss"]  # the first phase's loss


def test_vaegan_headline_is_its_generator_side_objective() -> None:
    model = VAEGAN(data_shape=(8,), latent_dim=2, width=4)
    t = trainer(max_steps=2)
    t.fit(model, flat_data(n=16))
    m = t.callback_metrics
    torch.testing.assert_close(m["train/loss"], m["train/kl"] + m["train/llike"] + m["train/gen"])
    assert not torch.equal(m["train/loss"], m["train/encoder_loss"])  # not the first phase's


def test_a_batch_without_an_active_phase_is_refused() -> None:
    model = WAEGP(data_shape=(8,), latent_dim=2, width=4)
    idle = [dataclasses.replace(p, active=lambda: False) for p in model.phases()]
    model.phases = lambda: idle  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="no active phase"):
        trainer(max_steps=1).fit(model, flat_data())


def test_bad_phase_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        Phase("critic", lambda x: {}, [], 1e-3, repeats=0)
    model = VAEGAN(data_shape=(8,), latent_dim=2, width=4)
    three = [dataclasses.replace(p, repeats=2) for p in model.phases()]
    model.phases = lambda: three  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="simultaneously"):
        model.configure_optimizers()
    with pytest.raises(ValueError, match="trained by its phases"):
        model.automatic_optimization = True
    wae = WAEGP(data_shape=(8,), latent_dim=2, width=4)  # phases in turn, fresh batches
    vetoed = [dataclasses.replace(p, step_if=lambda t: True) for p in wae.phases()]
    wae.phases = lambda: vetoed  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="step_if needs simultaneous"):
        wae.configure_optimizers()
    gan = VAEGAN(data_shape=(8,), latent_dim=2, width=4)
    gan.fresh_batches = True
    with pytest.raises(ValueError, match="fresh_batches=True"):
        gan.configure_optimizers()


@pytest.mark.parametrize(
    ("accelerator", "precision"),
    [
        pytest.param("cpu", "bf16-mixed", id="cpu-bf16"),
        pytest.param(
            "cuda",
            "16-mixed",  # a GradScaler steps and updates once per optimizer step
            id="cuda-fp16-scaler",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
            ],
        ),
    ],
)
@pytest.mark.parametrize("name", ["WAEGP", "VAEGAN", "TwoStageVAE"])
def test_one_global_step_per_batch_under_a_precision_plugin(
    name: str, accelerator: str, precision: str
) -> None:
    model = create_model(name, data_shape=(8,), latent_dim=2, width=4, **EXTRA.get(name, {}))
    before = [p.detach().clone() for p in model.parameters()]
    count = CountSteps()
    t = trainer(max_steps=5, callbacks=[count], accelerator=accelerator, precision=precision)
    t.fit(model, flat_data())
    assert count.batches == 5 and t.global_step == 5
    assert count.steps == [STEPS_PER_BATCH[name]] * 5
    after = [p.detach().cpu() for p in model.parameters()]
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))

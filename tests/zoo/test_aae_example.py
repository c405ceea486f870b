"""docs/examples/aae.py, the plugin docs/plugins.md walks through, trains through the engine."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import lightning as L
import pytest
import torch
from testutils import phase_changes
from torch.utils.data import DataLoader, TensorDataset

from latentzoo.metrics import frechet_distance_between
from latentzoo.zoo import get_model_class, registry

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "aae.py"


@pytest.fixture
def aae() -> Iterator[ModuleType]:
    """The example imported from its path, registered in a registry copy the test throws away."""
    with registry.MODELS.isolated():
        spec = importlib.util.spec_from_file_location("aae_example", EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def fit(model: L.LightningModule, batches: int) -> L.Trainer:
    torch.manual_seed(0)
    x = torch.randn(256, 8) @ torch.randn(8, 8) * 2 + 3  # correlated, far from N(0, I)
    data = DataLoader(TensorDataset(x, torch.zeros(256)), batch_size=32, shuffle=True)
    trainer = L.Trainer(max_steps=batches, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    trainer.fit(model, data)
    model.eval()
    with torch.no_grad():
        model.codes = model.encode(x)  # type: ignore[assignment]
    return trainer


def test_each_optimizer_changes_only_its_own_network(aae: ModuleType) -> None:
    assert get_model_class("AAE") is aae.AAE
    model = aae.AAE(data_shape=(8,), latent_dim=2, width=4)
    assert phase_changes(model, torch.randn(16, 8)) == {  # type: ignore[arg-type]
        "autoencoder": {"encoder", "decoder"},
        "discriminator": {"discriminator"},
        "generator": {"encoder"},
    }


def test_the_adversary_pulls_the_codes_onto_the_prior(aae: ModuleType) -> None:
    torch.manual_seed(0)
    model = aae.AAE(data_shape=(8,), latent_dim=2, width=8)
    trainer = fit(model, 240)
    assert trainer.global_step == 240  # batches, though each takes three optimizer steps
    # The same nets with the discriminator's and generator's phases removed: a plain autoencoder.
    torch.manual_seed(0)
    plain = aae.AAE(data_shape=(8,), latent_dim=2, width=8)
    plain.phases = lambda: aae.AAE.phases(plain)[:1]  # type: ignore[method-assign]
    fit(plain, 240)
    prior = torch.randn(256, 2)
    fd_aae = frechet_distance_between(model.codes, prior)
    fd_plain = frechet_distance_between(plain.codes, prior)
    assert fd_aae < 0.05 * fd_plain, (fd_aae, fd_plain)  # seeds 0-2: ~0.1-0.6 against ~100

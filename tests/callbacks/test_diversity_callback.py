"""DiversityCallback's class radius: measured from draws of the model's own prior, through the
decoder and the domain evaluator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from testutils import LabelledNoise, trainer

from latentzoo.callbacks import DiversityCallback
from latentzoo.metrics.classifier import DomainClassifier
from latentzoo.metrics.diversity import class_radius
from latentzoo.metrics.extractors import DomainFeatures
from latentzoo.zoo import VAE, MoG


@pytest.fixture
def evaluator(tmp_path: Path, tiny_images: LabelledNoise) -> Path:
    path = tmp_path / "evaluator.ckpt"
    fit = trainer(max_steps=2)
    fit.fit(DomainClassifier(width=4), tiny_images)
    fit.save_checkpoint(path)
    return path


def test_class_radius_is_logged_from_the_models_prior(
    evaluator: Path, tiny_images: LabelledNoise
) -> None:
    model = VAE(latent_dim=3, width=4, prior=MoG(4, init_scale=3.0))
    cb = DiversityCallback(
        str(evaluator), num_samples=32, batch_size=16, class_radius_samples=12, seed=5
    )
    fit = trainer(limit_test_batches=1, callbacks=[cb])
    fit.test(model, tiny_images, verbose=False)
    logged = fit.callback_metrics
    assert {"test/h2", "test/distance_bound", "test/class_radius"} <= set(logged)

    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(5)
        z = model.prior.sample(12).detach()  # the MoG's draws, not N(0, I)'s
    net = DomainFeatures(str(evaluator)).net
    logits = lambda p: net(model.decode(p).clamp(0, 1))  # noqa: E731
    radius = class_radius(z, logits, batch_size=16, generator=torch.Generator().manual_seed(5))
    found = torch.isfinite(radius)
    assert float(logged["test/class_radius_unresolved"]) == pytest.approx(
        float((~found).double().mean())
    )
    assert float(logged["test/class_radius"]) == pytest.approx(
        float(radius[found].mean()), rel=1e-4
    )
    assert float(logged["test/class_radius"]) > 0


def test_negative_counts_are_refused(evaluator: Path) -> None:
    with pytest.raises(ValueError, match="class_radius_samples"):
        DiversityCallback(str(evaluator), class_radius_samples=-1)

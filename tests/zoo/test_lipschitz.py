"""LipschitzVAE: omega against its closed form on a linear encoder, and weight clipping after
every optimizer step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from testutils import trainer
from torch import nn

from latentzoo.datamodules import Synthetic
from latentzoo.zoo import LipschitzVAE, MoG
from latentzoo.zoo.lipschitz import lipschitz_penalty


def test_omega_of_a_linear_encoder_is_its_closed_form() -> None:
    torch.manual_seed(0)
    model = LipschitzVAE(data_shape=(5,), latent_dim=3, lipschitz_weight=30.0)
    model.encoder = nn.Linear(5, 6)  # mu = W_mu x + b, the first 3 outputs
    w = model.encoder.weight.detach()[:3]  # (3, 5)
    x = torch.randn(8, 5)
    expected = sum(
        float((w @ (x[i] - x[i + 4])).pow(2).sum() / (x[i] - x[i + 4]).pow(2).sum())
        for i in range(4)
    )
    with torch.no_grad():
        losses = model.compute_losses(x)
    assert float(losses["lipschitz"]) == pytest.approx(30.0 * expected, rel=1e-5)
    # the loss is the ELBO's terms plus this one
    torch.testing.assert_close(losses["loss"], losses["recon"] + losses["kl"] + losses["lipschitz"])


def test_shuffled_pairs_and_degenerate_batches() -> None:
    x, fx = torch.randn(7, 4), torch.randn(7, 2)
    torch.manual_seed(1)
    order = torch.randperm(7)
    torch.manual_seed(1)
    got = lipschitz_penalty(x, fx, "shuffle")
    xs, fs = x[order], fx[order]
    expected = sum(
        float((fs[i] - fs[i + 3]).pow(2).sum() / (xs[i] - xs[i + 3]).pow(2).sum()) for i in range(3)
    )
    assert float(got) == pytest.approx(expected, rel=1e-5)
    same = torch.ones(4, 3)  # identical inputs: no slope to measure, no division by zero
    assert float(lipschitz_penalty(same, torch.randn(4, 2))) == 0.0
    assert float(lipschitz_penalty(x[:1], fx[:1])) == 0.0


class ClipWatch(L.Callback):
    """After every training batch (its optimizer step done), the largest clipped |weight|."""

    def __init__(self) -> None:
        self.largest: list[float] = []
        self.at_bound: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        params = pl_module.clipped_parameters()
        self.largest.append(max(float(p.detach().abs().max()) for p in params))
        c = pl_module.clip_value
        self.at_bound.append(sum(int((p.detach().abs() == c).sum()) for p in params))


@pytest.mark.parametrize("clip_modules", ["mean", "encoder", "all"])
def test_weights_stay_clipped_after_every_step(clip_modules: str) -> None:
    c = 0.05
    model = LipschitzVAE(
        data_shape=(16,), latent_dim=2, width=4, clip_value=c, clip_modules=clip_modules,  # type: ignore[arg-type]
        lr=0.05, prior=MoG(4),
    )  # fmt: skip
    watch = ClipWatch()
    dm = Synthetic(data_dim=16, num_train=112, val_size=16, batch_size=16)
    trainer(max_steps=6, callbacks=[watch]).fit(model, dm)
    assert len(watch.largest) == 6
    c32 = float(torch.tensor(c))  # the clamp's bound, c rounded to float32
    assert all(v <= c32 for v in watch.largest)
    assert all(n > 0 for n in watch.at_bound)  # the clamp is active, not vacuous
    decoder_max = max(float(p.detach().abs().max()) for p in model.decoder.parameters())
    assert (decoder_max <= c32) == (clip_modules == "all")
    assert float(model.prior.means.detach().abs().max()) > c32  # the prior is not part of the map


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="clip_value must be > 0"):
        LipschitzVAE(data_shape=(4,), clip_value=0.0)
    with pytest.raises(ValueError, match="pairing 'half' or 'shuffle'"):
        LipschitzVAE(data_shape=(4,), pairing="random")  # type: ignore[arg-type]

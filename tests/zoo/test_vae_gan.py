"""VAE-GAN: Algorithm 1's three updates, and the discriminator-wins guard."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from testutils import BlobImages, snapshot, trainer

from latentzoo.zoo import VAEGAN


class RecordSteps(L.Callback):
    """For each optimizer step, the names of the model's parameters that it changed."""

    def __init__(self) -> None:
        self.changed: list[tuple[int, set[str]]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for i, opt in enumerate(trainer.optimizers):
            opt.register_step_pre_hook(lambda *_: self._before(pl_module))
            opt.register_step_post_hook(lambda *_, i=i: self._after(pl_module, i))

    def _before(self, m: L.LightningModule) -> None:
        self.params = {n: p.detach().clone() for n, p in m.named_parameters()}

    def _after(self, m: L.LightningModule, i: int) -> None:
        moved = {n for n, p in m.named_parameters() if not torch.equal(p, self.params[n])}
        self.changed.append((i, moved))


def test_each_optimizer_changes_only_its_own_network() -> None:
    model = VAEGAN(latent_dim=4, width=8)
    rec = RecordSteps()
    trainer(max_epochs=1, limit_train_batches=2, callbacks=[rec]).fit(model, BlobImages())
    own = [
        {n for n, _ in model.named_parameters() if n.startswith(prefix)}
        for prefix in ("encoder.", "decoder.", "discriminator.")
    ]
    assert [i for i, _ in rec.changed] == [0, 1, 2, 0, 1, 2]
    for i, moved in rec.changed:
        assert moved == own[i], f"optimizer {i} moved {sorted(moved ^ own[i])[:5]} wrongly"


class GradientsAtFirstStep(L.Callback):
    """The model's state before the first batch and every gradient when the first step begins."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.state = snapshot(pl_module)
        self.batch = batch[0].clone()
        opt = trainer.optimizers[0]
        opt.register_step_pre_hook(lambda *_: self._grab(pl_module))

    def _grab(self, m: L.LightningModule) -> None:
        if not hasattr(self, "grads"):
            self.grads = {n: p.grad.clone() for n, p in m.named_parameters()}


def test_gradients_are_algorithm_1s_from_one_forward_pass() -> None:
    # Each network's gradient, taken in its own toggled pass, equals the gradient of its own
    # objective from one shared forward pass at the same parameters and noise.
    model = VAEGAN(latent_dim=4, width=8)
    noise = (torch.randn(16, 4), torch.randn(16, 4))
    model.draw_noise = lambda x: noise  # type: ignore[method-assign]
    rec = GradientsAtFirstStep()
    trainer(max_epochs=1, limit_train_batches=1, callbacks=[rec]).fit(model, BlobImages())
    ref = VAEGAN(latent_dim=4, width=8)
    ref.load_state_dict(rec.state)
    t = ref.terms(rec.batch, noise)
    for key, prefix in (("enc", "encoder."), ("dec", "decoder."), ("dis", "discriminator.")):
        named = [(n, p) for n, p in ref.named_parameters() if n.startswith(prefix)]
        grads = torch.autograd.grad(t[key], [p for _, p in named], retain_graph=True)
        for (n, _), g in zip(named, grads, strict=True):
            assert torch.allclose(rec.grads[n], g, rtol=1e-4, atol=1e-6), n


def test_discriminator_that_wins_outright_is_flagged() -> None:
    # A threshold no loss is below: never flagged. One every loss is below: flagged after 3
    # batches (global_step counts the three optimizer steps of each batch).
    calm = VAEGAN(latent_dim=4, width=8, dis_win_loss=1e-12, dis_win_steps=3)
    t = trainer(max_epochs=1, limit_train_batches=4, log_every_n_steps=1)
    t.fit(calm, BlobImages())
    assert t.callback_metrics["train/dis_collapsed"] == 0
    assert int(calm.dis_win_streak) == 0
    won = VAEGAN(latent_dim=4, width=8, dis_win_loss=1e6, dis_win_steps=3)
    t = trainer(max_epochs=1, limit_train_batches=4, log_every_n_steps=1)
    with pytest.warns(UserWarning, match="wins outright"):
        t.fit(won, BlobImages())
    assert t.callback_metrics["train/dis_collapsed"] == 1
    assert int(won.dis_win_streak) == 4


def test_reconstruction_term_lives_in_discriminator_features() -> None:
    # Perturbing only the discriminator changes L_llike but not the pixel error.
    model = VAEGAN(latent_dim=4, width=8).eval()
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(1)
    before = model.compute_losses(x)
    with torch.no_grad():
        for p in model.discriminator.parameters():
            p.mul_(2.0)
    torch.manual_seed(1)
    after = model.compute_losses(x)
    assert torch.equal(before["recon"], after["recon"])
    assert not torch.allclose(before["llike"], after["llike"])


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="gamma"):
        VAEGAN(gamma=-1.0)

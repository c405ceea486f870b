"""VAE-GAN: Algorithm 1's three updates, the equilibrium gating and annealing of the authors'
recipe, and the discriminator-wins guard."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from testutils import BlobImages, snapshot, trainer

from latentzoo.zoo import VAEGAN
from latentzoo.zoo.vae_gan_recipes import equilibrium_gate


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
    model.gates = lambda terms: (True, True)  # type: ignore[method-assign]  # no gating here
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


@pytest.mark.parametrize(
    ("real", "fake", "dis", "dec"),
    [
        (0.70, 0.70, True, True),
        (0.20, 0.70, False, True),
        (0.70, 1.20, True, False),
        (0.20, 1.20, True, True),
    ],
)
def test_equilibrium_gate_is_larsen_et_als(real: float, fake: float, dis: bool, dec: bool) -> None:
    """aegan.py:163-205 with margin 0.35 around 0.68; both step if both would be frozen."""
    assert equilibrium_gate(real, fake, margin=0.35) == (dis, dec)


@pytest.mark.parametrize(("gates", "frozen"), [((False, True), "discriminator."),
                                               ((True, False), "decoder.")])  # fmt: skip
def test_a_gated_network_skips_its_step(gates: tuple[bool, bool], frozen: str) -> None:
    model = VAEGAN(latent_dim=4, width=8)
    model.gates = lambda terms: gates  # type: ignore[method-assign]
    before = snapshot(model)
    t = trainer(max_epochs=1, limit_train_batches=1, log_every_n_steps=1)
    t.fit(model, BlobImages())
    after = snapshot(model)
    for prefix in ("encoder.", "decoder.", "discriminator."):
        params = [k for k in before if k.startswith(prefix) and "running" not in k]
        moved = any(not torch.equal(before[k], after[k]) for k in params if "num_batches" not in k)
        assert moved == (prefix != frozen), prefix
    assert t.global_step == 1
    assert t.callback_metrics["train/dis_update"] == float(gates[0])


def test_authors_learning_rate_is_annealed_over_the_run() -> None:
    """GammaAnnealer(lr_start, 1e-5, n_epochs, gamma=0.75), both divided by the batch size."""
    model = VAEGAN(latent_dim=4, width=8)
    model.gates = lambda terms: (True, True)  # type: ignore[method-assign]
    t = trainer(max_epochs=2, limit_train_batches=1)
    t.fit(model, BlobImages())
    lr0, end = 0.025 / 64, 1e-5 / 64
    want = lr0 - (1 / 2) ** 0.75 * (lr0 - end)  # the second (last) epoch's
    for opt in t.optimizers:
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([want] * 2)
    weights = t.optimizers[0].param_groups[0]  # deeppy's decay on conv/linear weights only
    assert weights["weight_decay"] == 1e-5 and all(p.ndim >= 2 for p in weights["params"])
    assert t.optimizers[0].param_groups[1]["weight_decay"] == 0


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="gamma"):
        VAEGAN(gamma=-1.0)

"""LMGAE: the mask gates decoder, critic and samples; four optimizers; each recipe's mask
initialisation, schedules and units; the n = 4 experiment."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from testutils import phase_changes, run_python

from latentzoo.callbacks.holes import open_gate
from latentzoo.datamodules.synthetic import Synthetic
from latentzoo.zoo import LMGAE


def _model_with_closed_dim(closed: int = 2) -> LMGAE:
    torch.manual_seed(0)
    model = LMGAE(data_shape=(10,), latent_dim=5, width=4).eval()
    with torch.no_grad():
        model.mask_param.fill_(2.0)
        model.mask_param[closed] = 0.0  # m = 1 - exp(0) = 0
    return model


def _vary(z: torch.Tensor, dim: int) -> torch.Tensor:
    z2 = z.clone()
    z2[:, dim] = torch.randn(len(z)) * 10
    return z2


def test_zero_mask_entry_cuts_the_coordinate_from_decoder_and_critic():
    model = _model_with_closed_dim(2)
    z = torch.randn(6, 5)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(_vary(z, 2)), model.decode(z))
        torch.testing.assert_close(model.score(_vary(z, 2)), model.score(z))
        # an open coordinate still matters
        assert not torch.allclose(model.decode(_vary(z, 3)), model.decode(z))
        assert not torch.allclose(model.score(_vary(z, 3)), model.score(z))


def test_samples_pass_through_the_mask_whatever_the_latent_sampler():
    model = _model_with_closed_dim(2)
    z = torch.randn(6, 5)
    # a pluggable sampler replaces sample_latent; its codes must still be masked
    model.sample_latent = lambda n: _vary(z, 2)[:n]  # type: ignore[method-assign]
    with torch.no_grad():
        torch.testing.assert_close(model.sample(6), model.decode(z))


def test_active_dims_counts_entries_at_or_above_threshold():
    model = _model_with_closed_dim(2)
    with torch.no_grad():
        model.mask_param[0] = -torch.log(torch.tensor(1 - 0.05))  # m = 0.05 < 0.1
    assert model.active_dims == 3
    assert model.mask.shape == (5,)


@pytest.mark.parametrize("recipe", ["authors", "latentzoo"])
def test_each_of_the_four_optimizers_changes_only_its_own_parameters(recipe: str):
    torch.manual_seed(0)
    model = LMGAE(data_shape=(12,), latent_dim=4, width=4, recipe=recipe)  # type: ignore[arg-type]
    changes = phase_changes(model, torch.randn(16, 12))
    assert changes == {
        "autoencoder": {"encoder", "decoder"},
        "generator": {"encoder"},
        "critic": {"critic"},
        "mask": {"mask_param"},
    }


def test_mask_step_projects_onto_nonnegative_v():
    model = LMGAE(data_shape=(12,), latent_dim=4, width=4)
    with torch.no_grad():
        model.mask_param.copy_(torch.tensor([-1.0, 0.5, -0.1, 2.0]))
    model.project_mask()
    assert torch.equal(model.mask_param.detach(), torch.tensor([0.0, 0.5, 0.0, 2.0]))
    assert int(model.mask_steps) == 1


@pytest.mark.parametrize("scale", [1.0, 0.3, 0.02, 1e-4])
def test_active_dims_count_entries_against_the_largest_whatever_the_masks_scale(scale):
    """A common scale of m is D's first layer's to absorb: the count reads m_j >= 0.1 max m."""
    model = LMGAE(data_shape=(12,), latent_dim=6, width=4)
    shape = torch.tensor([1.0, 0.5, 0.2, 0.11, 0.09, 0.0])  # 0.11 and 0.09 sit either side
    with torch.no_grad():
        model.mask_param.copy_(-torch.log1p(-scale * shape))  # m = 1 - exp(-v) = scale * shape
    assert model.active_dims == 4
    assert model.used_latent_dims().tolist() == [0, 1, 2, 3]
    gate = open_gate(model)
    assert gate is not None and torch.nonzero(gate).squeeze(1).tolist() == [0, 1, 2, 3]


def test_an_all_closed_mask_has_no_active_dims():
    model = LMGAE(data_shape=(12,), latent_dim=3, width=4)
    with torch.no_grad():
        model.mask_param.zero_()
    assert model.active_dims == 0 and model.used_latent_dims().tolist() == []


def test_bad_mask_arguments_raise_early():
    with pytest.raises(ValueError, match="mask_init"):
        LMGAE(data_shape=(12,), mask_init=1.0)
    with pytest.raises(ValueError, match="mask_lr"):
        LMGAE(data_shape=(12,), mask_lr=0.0)


def test_mask_starts_as_each_recipe_says():
    torch.manual_seed(0)
    authors = LMGAE(data_shape=(12,), latent_dim=64, width=4, critic_width=8, recipe="authors")
    v = authors.mask_param.detach()  # v ~ U[0, 5] (MaskAAE_MNIST.py:318-320)
    assert 0 <= float(v.min()) < 0.5 and 4.5 < float(v.max()) <= 5 and v.std() > 1
    ours = LMGAE(data_shape=(12,), latent_dim=4, width=4)  # the default recipe
    assert ours.recipe == "latentzoo"
    torch.testing.assert_close(ours.mask, torch.full((4,), 0.5))
    given = LMGAE(data_shape=(12,), latent_dim=4, width=4, mask_init=0.9)
    torch.testing.assert_close(given.mask, torch.full((4,), 0.9))


@pytest.mark.parametrize(("m", "interval"), [(8, 75), (20, 75), (48, 5400), (100, 10000)])
def test_authors_binarizer_doubles_every_4i_batches_up_to_2048(m: int, interval: int):
    model = LMGAE(data_shape=(12,), latent_dim=m, width=4, critic_width=8, recipe="authors")

    def c_at(step: int) -> float:
        model.mask_steps.fill_(step)
        return model.binarize_weight()

    assert c_at(0) == c_at(4 * interval - 1) == 2 / m
    assert c_at(4 * interval) == 4 / m and c_at(8 * interval) == 8 / m
    k = next(k for k in range(40) if 2 / m * 2**k >= 2048)  # the first doubling to the cap
    assert c_at(4 * interval * (k - 1)) < 2048
    assert c_at(4 * interval * k) == c_at(4 * interval * (k + 3)) == 2048.0


def test_latentzoo_binarizer_doubles_continuously():
    model = LMGAE(data_shape=(12,), latent_dim=4, width=4, recipe="latentzoo")
    model.mask_steps.fill_(250)
    assert model.binarize_weight() == pytest.approx(0.5 * 2**0.5)
    model.mask_steps.fill_(10**7)
    assert model.binarize_weight() == 2048.0


def test_authors_autoencoder_and_mask_rates_drop_5x_after_step_5i():
    """The intended effect of MaskAAE_MNIST.py:388-390 (which scales the losses instead)."""
    model = LMGAE(data_shape=(12,), latent_dim=8, width=4, critic_width=8, recipe="authors")
    phases = {p.name: p for p in model.phases()}
    opts = dict(zip(phases, model.configure_optimizers(), strict=True))
    for step, factor in ((0, 1.0), (375, 1.0), (376, 0.2), (5000, 0.2)):
        model.mask_steps.fill_(step)
        for name, phase in phases.items():
            phase.scale_lr(opts[name])
            base = {"autoencoder": 5e-4, "critic": 1e-4, "generator": 1e-4, "mask": 5e-4}[name]
            expected = base * (factor if name in ("autoencoder", "mask") else 1.0)
            assert opts[name].param_groups[0]["lr"] == pytest.approx(expected), (step, name)
    ours = LMGAE(data_shape=(12,), latent_dim=8, width=4, recipe="latentzoo")
    assert all(p.lr_factor is None for p in ours.phases())


def _phase_grads(model: LMGAE, loss: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    getattr(model, loss)(x)["loss"].backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("sigma", [0.01, 0.1, 3.0])
def test_mask_and_variance_penalty_do_not_depend_on_the_decoder_sigma(sigma):
    """At any sigma the auto-encoder phase is sigma=1's scaled by 1 / sigma^2 (RMSProp undoes a
    scale), and the mask phase is sigma=1's exactly: the mask decides the same way."""
    x = torch.rand(32, 12)
    models = {}
    for s in (1.0, sigma):
        torch.manual_seed(0)
        models[s] = LMGAE(data_shape=(12,), latent_dim=6, width=4, decoder_sigma=s,
                          recipe="latentzoo")  # fmt: skip
        with torch.no_grad():
            models[s].mask_param.copy_(torch.linspace(0.1, 2.0, 6))  # half-closed entries too
    for loss, scale in (("autoencoder_loss", 1 / sigma**2), ("mask_loss", 1.0)):
        torch.manual_seed(1)  # the prior draws of W_f
        ref = _phase_grads(models[1.0], loss, x)
        torch.manual_seed(1)
        got = _phase_grads(models[sigma], loss, x)
        assert ref.keys() == got.keys() and ref
        for name in ref:
            torch.testing.assert_close(got[name], scale * ref[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian_learned", "gaussian_gamma"])
def test_variance_penalty_is_weighted_by_the_likelihoods_precision(likelihood):
    """Var[x|z] of each likelihood: the penalty's weight is 1 / its mean over coordinates."""
    torch.manual_seed(0)
    model = LMGAE(data_shape=(12,), latent_dim=6, width=4, likelihood=likelihood,
                  recipe="latentzoo")  # fmt: skip
    x = torch.rand(32, 12)
    out = model.decoder(model.gate(model.encode(x)))
    var = model.likelihood.variance(out)
    if likelihood == "bernoulli":
        p = torch.sigmoid(out)
        torch.testing.assert_close(var, p * (1 - p))
    losses = model.autoencoder_loss(x)
    recon = model.likelihood.nll(x, out).mean()
    sum_var = ((1 - model.mask) * model.encode(x).var(0)).sum()
    torch.testing.assert_close(losses["var_penalty"], sum_var / var.mean())
    torch.testing.assert_close(losses["loss"], recon + sum_var / var.mean())


@pytest.mark.slow
def test_lmgae_defaults_find_the_true_latent_dimension_through_the_cli(tmp_path):
    """The new user's run of issue 11: n = 8, m = 16, 25 epochs, LMGAE's defaults (latentzoo's
    recipe; the authors' recipe is measured by the lmgae-grid suite)."""
    import json

    proc = run_python(
        "-m", "latentzoo", "fit", "--model", "LMGAE", "--data", "Synthetic",
        "--data.latent_dim", "8", "--model.latent_dim", "16", "--trainer.max_epochs", "25",
        "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = next(tmp_path.rglob("last.ckpt"))
    model = LMGAE.load_from_checkpoint(ckpt)
    assert model.active_dims == 8, json.dumps(model.mask.tolist())


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="a miss of the default recipe, kept on record: after 20 epochs its mask is undecided, "
    "7 entries at 0.070-0.177 (4 of them above 0.1: the absolute count's 4 split a 1.4x gap) and "
    "the decoder reads all 7 (m_j times its first layer's column norm: 0.50-1 of the largest); "
    "the relative count reads 7 (docs/models/wae_gp_lmgae.md)",
)
def test_lmgae_finds_the_true_latent_dimension():
    """n = 4, m = 12: the mask closes the spurious dimensions (the paper's sec. 5.1, reduced)."""
    L.seed_everything(0)
    torch.set_num_threads(1)
    dm = Synthetic(latent_dim=4, data_dim=64)
    model = LMGAE(data_shape=(64,), latent_dim=12, recipe="latentzoo")
    L.Trainer(
        max_epochs=20,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    ).fit(model, dm)
    assert abs(model.active_dims - 4) <= 1, model.mask

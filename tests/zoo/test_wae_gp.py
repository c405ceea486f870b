"""WAE-GP: the gradient penalty, the optimizers' parameter sets, the critic's step count, the
recipes, and that it is LMGAE with the mask off."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from testutils import phase_changes
from torch.utils.data import DataLoader, TensorDataset

from latentzoo.zoo import LMGAE, WAEGP
from latentzoo.zoo.nets import mlp
from latentzoo.zoo.optimizers import TF1RMSprop
from latentzoo.zoo.wae_gp import gradient_penalty


def _direct_penalty(critic: torch.nn.Module, real, fake, eps) -> torch.Tensor:
    """(||grad_u f(u)|| - 1)^2 averaged over samples, one autograd call per sample."""
    terms = []
    for r, f, e in zip(real, fake, eps, strict=True):
        u = (e * r + (1 - e) * f).detach().requires_grad_(True)  # (m,)
        (g,) = torch.autograd.grad(critic(u[None]).squeeze(), u, create_graph=True)
        terms.append((g.norm() - 1) ** 2)
    return torch.stack(terms).mean()


def test_gradient_penalty_matches_per_sample_autograd():
    torch.manual_seed(0)
    critic = mlp(5, 1, hidden=16)
    real, fake, eps = torch.randn(7, 5), torch.randn(7, 5) * 3 + 1, torch.rand(7, 1)
    gp = gradient_penalty(critic, real, fake, eps)
    expected = _direct_penalty(critic, real, fake, eps)
    torch.testing.assert_close(gp, expected)
    # create_graph: the penalty trains the critic, with the same gradient as the direct one
    # (the output bias leaves input gradients unchanged, so it gets none)
    weights = [p for n, p in critic.named_parameters() if n != "4.bias"]
    grads = torch.autograd.grad(gp, weights)
    expected_grads = torch.autograd.grad(expected, weights)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)
    assert gp > 0


@pytest.mark.parametrize("recipe", ["authors", "latentzoo"])
def test_each_optimizer_changes_only_its_own_parameters(recipe: str):
    torch.manual_seed(0)
    model = WAEGP(data_shape=(12,), latent_dim=3, width=4, recipe=recipe)  # type: ignore[arg-type]
    changes = phase_changes(model, torch.randn(16, 12))
    assert changes == {"autoencoder": {"encoder", "decoder"}, "critic": {"critic"},
                       "generator": {"encoder"}}  # fmt: skip
    folded = WAEGP(data_shape=(12,), latent_dim=3, width=4, update="folded")
    changes = phase_changes(folded, torch.randn(16, 12))
    assert changes == {"autoencoder": {"encoder", "decoder"}, "critic": {"critic"}}


@pytest.mark.parametrize("recipe", ["authors", "latentzoo"])
def test_waegp_is_lmgae_without_the_mask_phase(recipe: str):
    """Same phases (order, rates, repeats, optimizers), critic and batches; the mask comes last."""
    kw = {"data_shape": (12,), "latent_dim": 4, "width": 4, "recipe": recipe}
    wae, lmgae = WAEGP(**kw), LMGAE(**kw)  # type: ignore[arg-type]

    def table(model):
        return [(p.name, p.lr, p.repeats, p.optimizer) for p in model.phases()]

    assert table(lmgae)[:-1] == table(wae) and table(lmgae)[-1][0] == "mask"
    assert str(wae.critic) == str(lmgae.critic)
    assert wae.fresh_batches == lmgae.fresh_batches == (recipe == "authors")
    assert [p.lr_factor is None for p in wae.phases()] == [
        p.lr_factor is None for p in lmgae.phases()[:-1]]  # fmt: skip


def test_recipes_set_the_authors_and_latentzoos_constants():
    assert WAEGP(data_shape=(12,)).recipe == LMGAE(data_shape=(12,)).recipe == "latentzoo"
    authors = WAEGP(data_shape=(12,), latent_dim=4, width=4, recipe="authors")
    assert [(p.name, p.lr, p.repeats) for p in authors.phases()] == [
        ("autoencoder", 5e-4, 1), ("critic", 1e-4, 5), ("generator", 1e-4, 1)]  # fmt: skip
    linears = [m for m in authors.critic if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [1024] * 4 + [1]
    assert all(isinstance(o, TF1RMSprop) for o in authors.configure_optimizers())
    ours = WAEGP(data_shape=(12,), latent_dim=4, width=4, recipe="latentzoo", critic_lr=1e-3)
    assert [(p.name, p.lr, p.repeats) for p in ours.phases()] == [
        ("autoencoder", 5e-4, 1), ("generator", 5e-4, 1), ("critic", 1e-3, 5)]  # fmt: skip
    linears = [m for m in ours.critic if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [16, 16, 1]
    assert all(type(o) is torch.optim.RMSprop for o in ours.configure_optimizers())
    with pytest.raises(ValueError, match="recipe must be one of"):
        WAEGP(data_shape=(12,), recipe="paper")  # type: ignore[arg-type]


def test_training_step_takes_n_critic_critic_steps_per_batch(tmp_path):
    torch.manual_seed(0)
    model = WAEGP(data_shape=(12,), latent_dim=3, width=4, n_critic=3, update="folded",
                  recipe="latentzoo")  # all phases on every batch  # fmt: skip
    data = DataLoader(TensorDataset(torch.randn(8, 12), torch.zeros(8)), batch_size=8)
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    ae_opt, critic_opt = (o.optimizer for o in model.optimizers())  # type: ignore[union-attr]
    assert {int(s["step"]) for s in ae_opt.state.values()} == {1}
    assert {int(s["step"]) for s in critic_opt.state.values()} == {3}
    for key in ("train/recon", "train/generator", "train/wasserstein", "train/gp"):
        assert torch.isfinite(trainer.callback_metrics[key])


def test_bad_arguments_raise_early():
    with pytest.raises(ValueError, match="n_critic"):
        WAEGP(data_shape=(12,), n_critic=0)
    with pytest.raises(ValueError, match="critic_lr"):
        WAEGP(data_shape=(12,), critic_lr=0.0)


def test_a_learned_decoder_variance_is_trained_by_the_autoencoder_step():
    torch.manual_seed(0)
    model = WAEGP(data_shape=(12,), latent_dim=3, width=4, likelihood="gaussian_gamma",
                  recipe="latentzoo")  # the authors' cost has no variance  # fmt: skip
    changes = phase_changes(model, torch.randn(16, 12))
    assert changes["autoencoder"] == {"encoder", "decoder", "likelihood"}
    assert "likelihood" not in changes["critic"]


def test_the_critic_compares_codes_with_the_prior_whatever_sampler_is_attached():
    class FarAway:
        def sample(self, n: int) -> torch.Tensor:
            return torch.full((n, 3), 50.0)

    model = WAEGP(data_shape=(12,), latent_dim=3, width=4)
    z = torch.randn(64, 3)
    torch.manual_seed(1)
    plain = model.wasserstein(z)
    model.set_latent_sampler(FarAway())
    torch.manual_seed(1)
    assert torch.equal(model.wasserstein(z), plain)
    assert model.sample_latent(2).max() == 50.0  # while sample() does use the sampler

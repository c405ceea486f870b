"""The adversarial models' training terms against direct transcriptions of the authors' code.

Each test fixes the tensors a training step draws (data, prior samples, interpolation weights,
noise), runs the model's phase losses (what the engine's step minimizes) and compares them with
the equations written out here from the authors' code: MaskAAE_MNIST.py (arnabkmondal/MaskAAE @
e508d96, MA:line) for LMGAE and WAE-GP, andersbll/autoencoding_beyond_pixels @ 24aa0f2
(model/aegan.py, AG:line) for the VAE-GAN. Only the nets are the model's; the formulas are not.
"""

from __future__ import annotations

import math

import pytest
import torch

from latentzoo.zoo import LMGAE, VAEGAN, WAEGP

B, D, M = 4, 6, 3


def maskaae_terms(model: WAEGP, x, m, z, a, step: int, interval: int = 75):  # type: ignore[no-untyped-def]
    """L_AE, L_G, L_C and L_M of MA:247-266 through the model's nets (m = 1: mask off)."""
    e = model.encoder(x)
    p = torch.sigmoid(model.decoder(m * e)).clamp(1e-7, 1 - 1e-7)  # Dense(784, sigmoid)

    def f(h: torch.Tensor) -> torch.Tensor:
        return model.critic(h).squeeze(-1)

    R = -(x * p.log() + (1 - x) * (1 - p).log()).mean()  # keras BCE: mean over batch, pixels
    V = (((e.mean(0) - e) ** 2) * torch.exp(-10 * m**2)).mean()
    u = (m * z + a * (m * e - m * z)).detach().requires_grad_()
    (g,) = torch.autograd.grad(f(u).sum(), u, create_graph=True)
    c = min(2048.0, (2 / M) * 2 ** (step // (4 * interval)))
    return {
        "ae": R + 100 * V,
        "generator": -f(m * e).mean(),
        "critic": f(m * e).mean() - f(m * z).mean() + 10 * ((g.norm(dim=1) - 1) ** 2).mean(),
        "mask": 1000 * R
        + (1 - (f(m * e).mean() - f(m * z).mean())) ** 2
        + c * (m * (1 - m)).abs().sum(),
        "R": R,
    }


def close(got: torch.Tensor, want: torch.Tensor) -> None:
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("step", [0, 299, 300, 700, 5000])
def test_lmgae_authors_terms_are_maskaae_equations(step: int) -> None:
    torch.manual_seed(0)
    model = LMGAE(data_shape=(D,), latent_dim=M, width=4, critic_width=8, likelihood="bernoulli",
                  recipe="authors")  # fmt: skip
    x, z, a = torch.rand(B, D), torch.randn(B, M), torch.rand(B, 1)
    with torch.no_grad():
        model.mask_param.copy_(torch.tensor([0.2, 1.0, 3.0]))
    model.mask_steps.fill_(step)
    want = maskaae_terms(model, x, model.mask, z, a, step)
    ae = model.autoencoder_loss(x)
    close(ae["loss"], want["ae"])
    close(ae["recon"], want["R"])
    close(model.generator_loss(x)["loss"], want["generator"])
    close(model.critic_loss(x, prior=z, eps=a)["loss"], want["critic"])
    close(model.mask_loss(x, prior=z)["loss"], want["mask"])


def test_waegp_authors_terms_are_maskaae_equations_with_the_mask_off() -> None:
    torch.manual_seed(0)
    model = WAEGP(data_shape=(D,), latent_dim=M, width=4, critic_width=8, likelihood="bernoulli",
                  recipe="authors")  # fmt: skip
    x, z, a = torch.rand(B, D), torch.randn(B, M), torch.rand(B, 1)
    want = maskaae_terms(model, x, torch.ones(M), z, a, 0)
    close(model.autoencoder_loss(x)["loss"], want["R"])  # L_AE = R (MA:268)
    close(model.generator_loss(x)["loss"], want["generator"])
    close(model.critic_loss(x, prior=z, eps=a)["loss"], want["critic"])


@pytest.mark.parametrize("recipe", ["authors", "latentzoo"])
def test_lmgae_with_the_mask_open_and_no_variance_penalty_is_waegp(recipe: str) -> None:
    torch.manual_seed(0)
    kw = {"data_shape": (D,), "latent_dim": M, "width": 4, "critic_width": 8, "recipe": recipe}
    lmgae = LMGAE(var_weight=0.0, **kw)  # type: ignore[arg-type]
    with torch.no_grad():
        lmgae.mask_param.fill_(100.0)  # m = 1 - e^-100 = 1 in float32
    assert torch.equal(lmgae.mask, torch.ones(M))
    wae = WAEGP(**kw)  # type: ignore[arg-type]
    wae.load_state_dict(lmgae.state_dict(), strict=False)
    x, z, a = torch.rand(B, D), torch.randn(B, M), torch.rand(B, 1)
    for loss in ("autoencoder_loss", "generator_loss"):
        assert torch.equal(getattr(lmgae, loss)(x)["loss"], getattr(wae, loss)(x)["loss"])
    assert torch.equal(lmgae.critic_loss(x, z, a)["loss"], wae.critic_loss(x, z, a)["loss"])


def test_lmgae_latentzoo_terms_are_issue_11s_equations() -> None:
    torch.manual_seed(0)
    sigma = 0.5
    model = LMGAE(data_shape=(D,), latent_dim=M, width=4, recipe="latentzoo", decoder_sigma=sigma)
    x, z = torch.rand(B, D), torch.randn(B, M)
    with torch.no_grad():
        model.mask_param.copy_(torch.tensor([0.2, 1.0, 3.0]))
    model.mask_steps.fill_(700)
    m, e = model.mask, model.encoder(x)
    xh = model.decoder(m * e)
    nll = (0.5 * ((x - xh) / sigma) ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)).sum(1)
    var_penalty = ((1 - m) * e.var(0)).sum() * sigma**-2  # weighted by the precision
    close(model.autoencoder_loss(x)["loss"], nll.mean() + var_penalty)
    W = model.critic(m * z).mean() - model.critic(m * e).mean()
    c = 2 / M * 2 ** (700 / 500)
    gamma = 1.0 * 700 / 1000
    want = 3 * 0.5 * ((x - xh) ** 2).sum(1).mean() + W + c * (m * (1 - m)).sum() + gamma * m.sum()
    close(model.mask_loss(x, prior=z)["loss"], want)


def vaegan_transcription(model: VAEGAN, x, eps, zp, w: float):  # type: ignore[no-untyped-def]
    """AG:57-119 with the 64x64 scripts' settings, through the model's (28x28) nets: Dis_l the
    last conv before its batch norm (run on [x~; x]), D on [x; x_p], e = 1e-3, the decoder's
    saturating term; batch means for the authors' batch sums."""
    mu, lv = model.posterior(x)
    zq = mu + eps * (0.5 * lv).exp()
    xt, xp = model.decode(zq), model.decode(zp)
    conv1, act1, conv2, *after = model.discriminator.features

    def dis_l(h: torch.Tensor) -> torch.Tensor:
        return conv2(act1(conv1(h)))  # pre-BN

    def dis(h: torch.Tensor) -> torch.Tensor:
        for layer in after:
            h = layer(h)
        return torch.sigmoid(model.discriminator.head(h)).squeeze(1)

    ft, fx = dis_l(torch.cat([xt, x])).flatten(1).chunk(2)
    dr, df = dis(dis_l(torch.cat([x, xp]))).chunk(2)
    KL = 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1).mean()
    Lll = 0.5 * (ft - fx).pow(2).sum(1).mean()
    real, fake = -(dr + 1e-3).log().mean(), -(1 - df + 1e-3).log().mean()
    return {
        "enc": KL + Lll,
        "dec": w * Lll + (1 - w) * (1 - df + 1e-3).log().mean(),
        "dis": 0.5 * real + 0.5 * fake,
        "real_cost": real,
        "fake_cost": fake,
    }


def test_vaegan_authors_terms_are_larsen_et_als_code() -> None:
    torch.manual_seed(0)
    model = VAEGAN(latent_dim=3, width=4)  # train mode: batch norm on each batch, as in a step
    x, eps, zp = torch.rand(B, 1, 28, 28), torch.randn(B, 3), torch.randn(B, 3)
    got = model.terms(x, (eps, zp))
    want = vaegan_transcription(model, x, eps, zp, w=1e-6)
    for key, value in want.items():
        close(got[key], value)
    assert VAEGAN(data_shape=(3, 32, 32), latent_dim=3, width=4).gamma == pytest.approx(
        1e-5 / (1 - 1e-5)
    )  # CIFAR's recon_vs_gan_weight


def test_vaegan_latentzoo_terms_are_the_non_saturating_variant() -> None:
    torch.manual_seed(0)
    model = VAEGAN(latent_dim=3, width=4, recipe="latentzoo")
    x, eps, zp = torch.rand(B, 1, 28, 28), torch.randn(B, 3), torch.randn(B, 3)
    got = model.terms(x, (eps, zp))
    mu, lv = model.posterior(x)
    xt, xp = model.decode(mu + eps * (0.5 * lv).exp()), model.decode(zp)
    h = model.discriminator.features(torch.cat([x, xt, xp]))  # the last hidden layer
    lx, lt, lp = model.discriminator.head(h).squeeze(1).chunk(3)
    fx, ft, _ = h.chunk(3)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    llike = 0.5 * (fx - ft).pow(2).sum(1).mean()
    gen = bce(lt, torch.ones(B)) + bce(lp, torch.ones(B))
    dis = bce(lx, torch.ones(B)) + bce(lt, torch.zeros(B)) + bce(lp, torch.zeros(B))
    close(got["dis"], dis)
    close(got["dec"], (1e-2 * llike + gen) / (1 + 1e-2))
    close(got["enc"], 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1).mean() + llike)

"""The VAE-family models' training terms against direct transcriptions of their references.

2-stage VAE: daib13/TwoStageVAE @ 8718623 (network/two_stage_vae_model.py, TS:line; demo.py);
VampPrior: jmtomczak/vae_vampprior @ bb6ff3e (models/VAE.py, models/Model.py); Lipschitz VAE:
the slides' regularizer as its docstring states it (no public code). Each test fixes the noise a
training step draws and compares the model's loss with the equations written out here.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latentzoo.zoo import VAE, LipschitzVAE, TwoStageVAE, VampPrior

B = 4
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_vae_loss(x, mu, lv, eps, decoder, log_sd):  # type: ignore[no-untyped-def]
    """TS:34-46: KL = sum (mu^2 + sd^2 - 2 log sd - 1) / 2 / B; gen = sum [((x - x^) / gamma)^2
    / 2 + log gamma + 0.5 log 2 pi] / B, gamma = exp(loggamma) the decoder's std."""
    sd = (0.5 * lv).exp()
    xh = decoder(mu + eps * sd).reshape(x.shape)
    kl = (mu**2 + sd**2 - 2 * sd.log() - 1).sum() / 2 / len(x)
    gen = ((((x - xh) / log_sd.exp()) ** 2) / 2 + log_sd + HALF_LOG_2PI).sum() / len(x)
    return kl, gen


def set_log_std(likelihood: nn.Module, log_sd: torch.Tensor) -> None:
    """latentzoo's gamma is a variance, softplus(raw) + 1e-6: set it to exp(2 loggamma)."""
    with torch.no_grad():
        likelihood.raw.copy_(torch.log(torch.expm1((2 * log_sd).exp() - 1e-6)))


def test_two_stage_vae_losses_are_dai_and_wipfs() -> None:
    torch.manual_seed(0)
    model = TwoStageVAE(data_shape=(6,), latent_dim=3, width=4, stage2_width=4).eval()
    x = torch.rand(B, 6)
    lg1, lg2 = torch.tensor(0.3), torch.tensor(-0.4)
    set_log_std(model.likelihood, lg1)
    set_log_std(model.stage2.likelihood, lg2)
    torch.manual_seed(1)
    stage1 = model.stage1_losses(x)
    torch.manual_seed(1)
    mu, lv = model.posterior(x)
    kl, gen = gaussian_vae_loss(x, mu, lv, torch.randn(B, 3), model.decoder, lg1)
    torch.testing.assert_close(stage1["kl"], kl)
    torch.testing.assert_close(stage1["recon"], gen)
    torch.manual_seed(2)
    stage2 = model.stage2_losses(x)
    torch.manual_seed(2)
    u = mu + torch.randn(B, 3) * (0.5 * lv).exp()  # DM:74: a fresh eps per minibatch
    mu2, lv2 = model.stage2.posterior(u)
    kl2, gen2 = gaussian_vae_loss(u, mu2, lv2, torch.randn(B, 3), model.stage2.decoder, lg2)
    torch.testing.assert_close(stage2["loss"], kl2 + gen2)


def test_stage2_networks_are_the_authors() -> None:
    """TS:76-97: 3 x [Dense(1024), ReLU], then concat([input, t]) before the output heads."""
    model = TwoStageVAE(data_shape=(6,), latent_dim=3, width=4)
    enc = model.stage2.encoder
    dense = [m for m in enc.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dense] == [
        (3, 1024), (1024, 1024), (1024, 1024), (3 + 1024, 2 * 3)]  # fmt: skip
    z = torch.randn(5, 3)
    t = z
    for layer in dense[:3]:
        t = torch.relu(layer(t))
    torch.testing.assert_close(enc(z), dense[3](torch.cat([z, t], 1)))
    assert model.stage2_epochs == 2 * model.stage1_epochs  # demo.py: 400 and 800 epochs


class AtEpoch(TwoStageVAE):
    epoch = 0

    @property
    def current_epoch(self) -> int:  # type: ignore[override]
        return self.epoch


HALVINGS = [(0, 1, 1), (149, 1, 1), (150, 0.5, 1), (299, 0.5, 1), (300, 0.25, 1), (309, 0.25, 1),
            (310, 0.25, 0.5), (610, 1 / 16, 0.25)]  # fmt: skip


@pytest.mark.parametrize(("epoch", "stage1", "stage2"), HALVINGS)
def test_two_stage_learning_rates_halve_as_the_authors(epoch, stage1, stage2) -> None:  # type: ignore[no-untyped-def]
    """demo.py: lr 1e-4 x 0.5^floor(epoch / 150) in stage 1, 0.5^floor(epoch2 / 300) in stage 2,
    epoch2 counted from stage 2's start (here epoch 10)."""
    model = AtEpoch(data_shape=(6,), latent_dim=3, width=4, stage2_width=4, stage1_epochs=10)
    model.epoch = epoch
    phases = {p.name: p for p in model.phases()}
    opts = dict(zip(phases, model.configure_optimizers(), strict=True))
    for name, factor in (("stage1", stage1), ("stage2", stage2)):
        phases[name].scale_lr(opts[name])
        assert [g["lr"] for g in opts[name].param_groups] == pytest.approx([1e-4 * factor] * 2)


def test_vamp_prior_is_the_mixture_of_posteriors_at_clipped_pseudo_inputs() -> None:
    """VV:196-215: log p(z) = logsumexp_k log N(z; m_k, lv_k) - log K with (m_k, lv_k) the
    encoder at hardtanh(W, 0, 1) (VM:23-34); the same in train and eval mode, and no batch-norm
    buffer of the encoder moves (the authors' encoder has no batch norm)."""
    torch.manual_seed(0)
    model = VAE(latent_dim=3, width=4, likelihood="bernoulli", prior=VampPrior(5, init="noise"))
    with torch.no_grad():
        model.prior.pseudo_inputs[0, 0, 0, :4] = torch.tensor([1.5, -0.5, 0.2, 1.0])
    z = torch.randn(7, 3)
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.eval()
    mk, lvk = model.posterior(model.prior.pseudo_inputs.clamp(0, 1))

    def log_n(z, m, lv):  # type: ignore[no-untyped-def]
        return -0.5 * ((z - m) ** 2 / lv.exp() + lv + math.log(2 * math.pi)).sum(-1)

    want = torch.logsumexp(log_n(z[:, None], mk[None], lvk[None]), 1) - math.log(5)
    torch.testing.assert_close(model.prior.log_prob(z), want)
    model.train()
    torch.testing.assert_close(model.prior.log_prob(z), want)
    model.prior.sample(9)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    model.prior.log_prob(z).sum().backward()  # hard tanh: no gradient outside [0, 1]
    grad = model.prior.pseudo_inputs.grad[0, 0, 0, :4]
    assert grad[0] == 0 and grad[1] == 0 and grad[2] != 0


def test_vamp_prior_options() -> None:
    torch.manual_seed(0)
    authors = VAE(latent_dim=3, width=4, prior=VampPrior(500, init="authors")).prior
    u = authors.pseudo_inputs.detach()
    assert u.mean() == pytest.approx(0.05, abs=1e-3) and u.std() == pytest.approx(0.01, rel=0.05)
    assert not authors.data_request()  # initialised: nothing to ask the datamodule for
    flat = VAE(data_shape=(4,), latent_dim=2, width=4, prior=VampPrior(3, init="noise")).prior
    with torch.no_grad():
        flat.pseudo_inputs.fill_(-2.0)  # Synthetic's vectors are unbounded: no clipping
    assert torch.equal(flat.inputs(), flat.pseudo_inputs)


def test_vaegan_prior_draws_in_training_mode_leave_batch_norm_alone() -> None:
    from latentzoo.zoo import VAEGAN

    model = VAEGAN(latent_dim=3, width=4, prior=VampPrior(5, init="noise"))
    buffers = {k: v.clone() for k, v in model.encoder.state_dict().items() if "running" in k}
    assert buffers and model.training
    _, z_p = model.draw_noise(torch.rand(B, 1, 28, 28))
    model.prior.kl(z_p, torch.zeros_like(z_p), z_p)
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in buffers.items())


def test_lipschitz_vae_loss_is_the_slides_objective() -> None:
    """-ELBO + 30 sum_{i < b/2} ||f(l_i) - f(l_{i+b/2})||^2 / ||l_i - l_{i+b/2}||^2, f = mu."""
    torch.manual_seed(0)
    model = LipschitzVAE(latent_dim=3, width=4, likelihood="bernoulli")
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(1)
    got = model.compute_losses(x)
    torch.manual_seed(1)
    mu, lv = model.posterior(x)
    z = mu + torch.randn(6, 3) * (0.5 * lv).exp()
    nll = F.binary_cross_entropy_with_logits(model.decoder(z), x, reduction="none")
    kl = 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1).mean()
    omega = (((mu[:3] - mu[3:]) ** 2).sum(1) / ((x[:3] - x[3:]).flatten(1) ** 2).sum(1)).sum()
    want = nll.flatten(1).sum(1).mean() + kl + 30 * omega
    torch.testing.assert_close(got["loss"], want)


def test_lipschitz_vae_clips_what_computes_the_mean_by_default() -> None:
    model = LipschitzVAE(latent_dim=3, width=4)
    enc, dec = model.encoder, model.decoder
    bn = next(m for m in enc.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        for p in (enc.features[0].weight, enc.head.weight, enc.head.bias, bn.weight):
            p.fill_(0.9)
        dec.fc[0].weight.fill_(0.9)
    model.clip_weights()
    assert float(enc.features[0].weight.max()) == pytest.approx(0.3)
    assert float(enc.head.weight[:3].max()) == pytest.approx(0.3)  # the mean's rows
    assert float(enc.head.weight[3:].min()) == pytest.approx(0.9)  # the log-variance's rows
    assert float(enc.head.bias[3:].min()) == pytest.approx(0.9)
    assert float(bn.weight.min()) == pytest.approx(0.9)  # no batch-norm scale
    assert float(dec.fc[0].weight.min()) == pytest.approx(0.9)  # not the decoder
    everything = LipschitzVAE(latent_dim=3, width=4, clip_modules="all")
    everything.clip_weights()
    bn_all = next(m for m in everything.decoder.modules() if isinstance(m, nn.BatchNorm2d))
    assert float(bn_all.weight.max()) == pytest.approx(0.3)  # the earlier default

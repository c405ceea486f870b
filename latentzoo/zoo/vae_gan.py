"""VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric").

A VAE whose reconstruction error is measured in the l-th hidden layer Dis_l of a GAN
discriminator instead of in pixels (sec. 2.2, eq. (6)-(7)):

    L_llike = -E_q[log N(Dis_l(x) | Dis_l(x~), I)] = 1/2 ||Dis_l(x) - Dis_l(x~)||^2 + const,
    L_prior = KL(q(z|x) || p(z))      (p = N(0, I) unless ``prior`` is given),
    L_GAN   = log Dis(x) + log(1 - Dis(x~)) + log(1 - Dis(x_p)),      (eq. (9) terms)

with x~ = Dec(z), z ~ q(z|x) the reconstruction, and x_p = Dec(z_p), z_p ~ p(z) a prior
sample (held fixed within a batch: a learned prior learns from L_prior alone, in the encoder's
update). Algorithm 1 updates each network on its own objective, all at the same parameters:

    theta_Enc <- -grad (L_prior + L_llike)
    theta_Dec <- -grad (gamma * L_llike - L_GAN)
    theta_Dis <- -grad (-L_GAN)    (the discriminator maximises L_GAN)

The three updates are phases of the engine in :mod:`latentzoo.zoo.phases` with ``simultaneous =
True``: each gradient comes from its own forward pass with only that network's parameters
requiring grad (``toggled_optimizer``), and the three steps follow; with the noise (eps of
z ~ q(z|x), and z_p) drawn once per batch in ``begin_batch``, the three passes compute the same
terms as one would, so the gradients are Algorithm 1's. One batch is one ``global_step``. One
graph with three ``backward(inputs=...)`` calls would cost one forward, but DDP cannot reduce
gradients of a backward restricted to part of the parameters. Batch-norm running
statistics see the batch three times per step.

gamma weighs content (L_llike) against style (L_GAN) in the decoder's update (sec. 2.3); the
paper gives no number, so 1e-2 here is a starting point to tune. The decoder's GAN term is the
usual non-saturating -log Dis(.) form, and Dis gets no gradient from L_llike (sec. 2.3). The
default optimizer is RMSProp with lr 3e-4, as in the paper's experiments.

A discriminator that wins outright (its loss near 0) gives the decoder no usable gradient and the
samples turn to noise; :class:`VAEGAN` counts the consecutive steps with discriminator loss below
``dis_win_loss``, logs ``train/dis_collapsed`` = 1 once the count reaches ``dis_win_steps`` and
warns once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.zoo import nets
from latentzoo.zoo.densities import LatentDensity
from latentzoo.zoo.likelihoods import LikelihoodName
from latentzoo.zoo.phases import Phase, PhasedAutoencoder
from latentzoo.zoo.registry import register_model
from latentzoo.zoo.vae import VAE, reparameterize

__all__ = ["VAEGAN"]


@register_model
class VAEGAN(VAE, PhasedAutoencoder):
    """VAE with a discriminator-feature reconstruction loss and GAN terms.

    The decoder's output is squashed by a sigmoid for images (data in [0, 1]) and left as is for
    flat vectors; there is no pixel likelihood, the one reconstruction term is L_llike.

    Args:
        data_shape: See :class:`AutoencoderModule`.
        latent_dim: See :class:`AutoencoderModule`.
        gamma: Weight of L_llike against the GAN term in the decoder's update.
        dis_win_loss: Discriminator loss (sum of three BCEs) below which it counts as winning.
        dis_win_steps: Consecutive winning steps after which ``train/dis_collapsed`` turns 1.
        width: See :class:`AutoencoderModule`; the discriminator has the encoder's shape.
        lr: RMSProp's learning rate for all three networks.
        prior: See :class:`~latentzoo.zoo.VAE`; trained in the encoder's update.
    """

    dis_win_streak: Tensor  # consecutive steps the discriminator has won, a long scalar
    simultaneous = True  # Algorithm 1: every gradient at the same parameters, then the steps

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        gamma: float = 1e-2,
        dis_win_loss: float = 1e-3,
        dis_win_steps: int = 200,
        width: int = 32,
        lr: float = 3e-4,
        prior: LatentDensity | None = None,
    ) -> None:
        output: LikelihoodName = (
            "bernoulli" if len(data_shape) == 3 else "gaussian_fixed"
        )  # sigmoid / identity
        super().__init__(
            data_shape=data_shape,
            latent_dim=latent_dim,
            likelihood=output,
            decoder_sigma=1.0,
            width=width,
            lr=lr,
            prior=prior,
        )
        if gamma < 0 or dis_win_loss <= 0 or dis_win_steps < 1:
            raise ValueError(
                f"need gamma >= 0, dis_win_loss > 0 and dis_win_steps >= 1, got {gamma}, "
                f"{dis_win_loss}, {dis_win_steps}"
            )
        self.gamma = gamma
        self.dis_win_loss = dis_win_loss
        self.dis_win_steps = dis_win_steps
        self.discriminator = self.build_encoder(1)
        self.register_buffer("dis_win_streak", torch.zeros((), dtype=torch.long))
        self._warned_collapse = False
        self._noise: tuple[Tensor, Tensor] | None = None  # this batch's, from begin_batch

    def discriminate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Dis_l(x), (B, F), the last hidden layer, and Dis's logit, (B,)."""
        d = self.discriminator
        trunk: nn.Module
        head: nn.Module
        if isinstance(d, nets.ConvEncoder):
            trunk, head = d.features, d.head
        else:  # the MLP of flat data: everything but the last linear layer is the trunk
            assert isinstance(d, nn.Sequential)
            trunk, head = d[:-1], d[-1]
        h = trunk(x)
        return h, head(h).squeeze(1)

    def draw_noise(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """eps of the reparameterisation and the prior draws z_p for a batch, each (B, latent_dim).

        The GAN term uses draws of the model's prior (not an attached latent sampler), detached:
        the three passes of a batch share them.
        """
        eps = torch.randn(len(x), self.latent_dim, device=x.device)
        return eps, self.sample_prior(len(x)).detach()

    def terms(self, x: Tensor, noise: tuple[Tensor, Tensor] | None = None) -> dict[str, Tensor]:
        """Every term of Algorithm 1 from one forward pass, averaged over the batch.

        Args:
            x: The batch.
            noise: ``(eps, z_p)`` from :meth:`draw_noise`; drawn here when None.
        """
        eps, z_p = self.draw_noise(x) if noise is None else noise
        mu, logvar = self.posterior(x)
        z = reparameterize(mu, logvar, eps)  # (B, latent_dim)
        x_rec = self.decode(z)
        x_p = self.decode(z_p)
        feats, logits = self.discriminate(torch.cat([x, x_rec, x_p]))  # one batch-norm batch
        f_x, f_rec, _ = feats.chunk(3)
        l_x, l_rec, l_p = logits.chunk(3)
        kl = self.prior.kl(mu, logvar, z).mean()
        llike = 0.5 * (f_x - f_rec).pow(2).sum(1).mean()
        dis = _bce(l_x, 1.0) + _bce(l_rec, 0.0) + _bce(l_p, 0.0)
        gen = _bce(l_rec, 1.0) + _bce(l_p, 1.0)  # non-saturating form of -L_GAN
        recon = (x_rec - x).pow(2).flatten(1).sum(1).mean()  # pixels, monitored only
        return {
            "kl": kl,
            "llike": llike,
            "gen": gen,
            "dis": dis,
            "recon": recon,
            "enc": kl + llike,
            "dec": self.gamma * llike + gen,
            "objective": kl + llike + gen,  # eq. (9) from the generator's side: train/loss
        }

    @override
    def compute_losses(self, x: Tensor) -> dict[str, Tensor]:
        """``loss`` = L_prior + L_llike + generator term (eq. (9) from the generator's side)."""
        t = self.terms(x)
        return {
            "loss": t["objective"],
            **{k: t[k] for k in _LOGGED if k != "objective"},
        }

    def parameter_groups(self) -> tuple[list[nn.Parameter], ...]:
        """Encoder (with the prior, if it has parameters), decoder (with the likelihood, if it has
        parameters) and discriminator."""
        enc = [*self.encoder.parameters(), *self.prior.parameters()]
        dec = [*self.decoder.parameters(), *self.likelihood.parameters()]
        return enc, dec, list(self.discriminator.parameters())

    # -- training: Algorithm 1 as three simultaneous phases ------------------------------------
    @override
    def begin_batch(self, x: Tensor) -> None:
        self._noise = self.draw_noise(x)  # once per batch: the three passes share it

    def _objective(
        self, key: str, monitored: bool = False
    ) -> Callable[[Tensor], dict[str, Tensor]]:
        """A phase loss: the objective ``key`` of :meth:`terms` as ``"loss"``.

        With ``monitored``, also the terms to log; one phase suffices, since all three see the
        same parameters and noise.
        """

        def loss(x: Tensor) -> dict[str, Tensor]:
            t = self.terms(x, self._noise)
            return {"loss": t[key], **({k: t[k] for k in _LOGGED} if monitored else {})}

        return loss

    @override
    def phases(self) -> list[Phase]:
        enc, dec, dis = self.parameter_groups()
        return [
            Phase("encoder", self._objective("enc", True), enc, self.lr, headline="objective"),
            Phase("decoder", self._objective("dec"), dec, self.lr),
            Phase("discriminator", self._objective("dis"), dis, self.lr),
        ]

    @override
    def end_batch(self, terms: dict[str, Tensor], logged: bool) -> None:
        self._noise = None
        self._watch_discriminator(terms["dis"], logged)

    def _watch_discriminator(self, dis: Tensor, logged: bool) -> None:
        won = dis < self.dis_win_loss
        self.dis_win_streak.copy_(torch.where(won, self.dis_win_streak + 1, 0))
        collapsed = (self.dis_win_streak >= self.dis_win_steps).float()
        if logged:
            self.log("train/dis_win_streak", self.dis_win_streak.float())
        self.log("train/dis_collapsed", collapsed, prog_bar=True)
        # Reading the flag costs a device sync, so only as often as the logger writes.
        if not self._warned_collapse and logged and bool(collapsed):
            self._warned_collapse = True
            rank_zero_warn(
                f"VAEGAN's discriminator loss has stayed below {self.dis_win_loss} for "
                f"{self.dis_win_steps} steps: it wins outright and the decoder gets no gradient "
                f"from it. Lower lr, raise gamma, or shrink the discriminator's width."
            )


_LOGGED = ("kl", "llike", "gen", "dis", "recon", "objective")


def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

"""Holes in the aggregated posterior, logged every k epochs and at test, with a picture.

The statistics are those of :mod:`latentzoo.metrics.holes`: samples of the aggregated posterior
q(z) (one draw z_n ~ q(z|x_n) per encoded training point, or the code itself for deterministic
encoders) against draws of the model's own prior (``model.sample_prior``): the share of the codes
that lie on a lower-dimensional set than the prior's draws, and cross-fitted density-ratio
estimates of q/p at the prior draws.

Logged (``stage`` is ``val`` or ``test``):

- ``stage/holes``: prior mass where q/p < ``epsilon`` (0.1): the share of prior draws that land
  where the encoder puts less than a tenth of the prior's density (1 where the codes lie on a
  lower-dimensional manifold);
- ``stage/kl_prior_agg`` (KL(p||q), inflated by holes) and ``stage/kl_agg_prior`` (KL(q||p));
- ``stage/intrinsic_dim`` and ``stage/intrinsic_dim_prior``: Levina-Bickel dimension of the codes
  and of as many prior draws (what a full-dimensional aggregate reads at this N);
  ``stage/low_dim_share``: the share of the codes on a lower-dimensional set;
- ``stage/offdiag_cov``: mean |off-diagonal covariance| of the codes over the active dimensions;
- ``holes/latents``: encodings over the prior's contours with the holes marked (the two leading
  principal components of the codes when d > 2), as in Tomczak's figure of a VAE with a N(0, I)
  prior.

Everything is measured in the space the decoder reads: a model that gates its latent coordinates
(``model.latent_usage()``, LMGAE's mask) has its codes and its prior draws multiplied by the same
gate (:func:`open_gate`), so a closed coordinate is 0 in both and makes no hole, and every
model's numbers compare. An entry the model does not count as open (``used_latent_dims()``;
LMGAE: below a tenth of the gate's largest, its ``mask_threshold``) is 0 even where it is not
exactly 0: the estimate does not depend on a coordinate's scale, so an entry of 1e-5 over codes
whose spread has shrunk (what LMGAE's variance penalty does to the dimensions it closes) would
read as a collapsed direction and put most of the prior in holes, though the decoder reads 1e-5
of it.
Under DDP each rank encodes its share; :class:`AggregatedPosteriorHoles` gathers the posteriors,
every rank computes the same numbers, and rank 0 alone draws the picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat
from typing_extensions import override

from latentzoo.callbacks.base import PeriodicEvaluation, Stage
from latentzoo.callbacks.batches import Split
from latentzoo.callbacks.log_media import figure_to_image, log_image, save_png
from latentzoo.metrics.holes import AggregatedPosteriorHoles, PriorSampler
from latentzoo.metrics.registry import EvaluationContext, MetricKey, register_model_metric
from latentzoo.zoo import AutoencoderModule

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "HolesCallback",
    "gated_posterior",
    "holes_figure",
    "holes_plot",
    "open_gate",
    "prior_sampler",
]


def _pca_basis(codes: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (d,) and the two leading principal directions (d, 2) of (N, d) codes."""
    mean = codes.mean(0)
    _, _, v = torch.linalg.svd(codes - mean, full_matrices=False)
    return mean, v[:2].T


# Mass inside the 1, 2 and 3 sigma circles of a 2-d standard normal: 1 - exp(-k^2 / 2).
HPD_MASSES = (0.393, 0.865, 0.989)


def _prior_contours(prior: Tensor, lim: float) -> tuple[Tensor, list[float]]:
    """A smoothed 2-d histogram of the (projected) prior draws over [-lim, lim]^2 and the
    density levels whose regions hold ``HPD_MASSES`` of it: any prior's 1/2/3-sigma contours.
    The bins widen with fewer draws (sqrt(n) / 1.5 a side, 20 to 120), so contours stay smooth."""
    bins = min(120, max(20, int(len(prior) ** 0.5 / 1.5)))
    hist, _ = torch.histogramdd(prior.float(), bins=[bins, bins], range=[-lim, lim, -lim, lim])
    x = torch.arange(-3, 4, dtype=torch.float32)
    kernel = torch.exp(-0.5 * x**2)
    kernel = (kernel[:, None] * kernel[None]) / kernel.sum() ** 2  # (7, 7) Gaussian blur
    density = torch.nn.functional.conv2d(hist[None, None], kernel[None, None], padding=3)[0, 0]
    ordered = density.flatten().sort(descending=True).values
    mass = ordered.cumsum(0) / ordered.sum()
    levels = sorted({float(ordered[int(torch.searchsorted(mass, m))]) for m in HPD_MASSES})
    return density.T, levels  # (y, x) for contour


def holes_plot(
    codes: Tensor, prior: Tensor, holes: Tensor, title: str = "", max_points: int = 5000
) -> Figure:
    """The holes picture as a matplotlib figure (see :func:`holes_figure`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codes, prior, holes = codes.double().cpu(), prior.double().cpu(), holes.cpu()
    d = codes.shape[1]
    if d == 1:
        codes, prior = (
            torch.cat([codes, torch.zeros_like(codes)], 1),
            torch.cat([prior, torch.zeros_like(prior)], 1),
        )
        axes = ("latent z1", "(one latent dimension)")
    elif d == 2:
        axes = ("latent z1", "latent z2")
    else:
        mean, basis = _pca_basis(codes)
        share = _explained(codes - mean, basis)
        codes, prior = (codes - mean) @ basis, (prior - mean) @ basis  # (N, 2), (M, 2)
        axes = (
            f"1st principal direction of the codes ({share[0]:.0%} of their variance)",
            f"2nd principal direction ({share[1]:.0%})",
        )
    lim = max(4.0, float(torch.cat([codes, prior]).abs().quantile(0.995)))
    fig, ax = plt.subplots(figsize=(5.5, 5.5), layout="constrained")
    gen = torch.Generator().manual_seed(0)
    hole_draws = prior[holes][:max_points]
    covered = prior[~holes][:max_points]
    # Prior draws first (under the codes), as small dots: holes red, covered light grey.
    ax.scatter(covered[:, 0], covered[:, 1], s=2, c="0.8", label="prior draws, covered")
    ax.scatter(hole_draws[:, 0], hole_draws[:, 1], s=4, c="tab:red", alpha=0.6,
               label=f"prior draws in holes ({holes.double().mean():.1%})")  # fmt: skip
    shown = codes[torch.randperm(len(codes), generator=gen)[:max_points]]
    ax.scatter(shown[:, 0], shown[:, 1], s=2, c="tab:blue", alpha=0.5, label="codes of the data")
    if d > 1 and len(prior) >= 100:
        density, levels = _prior_contours(prior, lim)
        grid = torch.linspace(-lim, lim, density.shape[0])
        lines = ax.contour(grid.numpy(), grid.numpy(), density.numpy(), levels=levels,
                           colors="black", linewidths=0.9)  # fmt: skip
        masses = dict(zip(levels, sorted(HPD_MASSES, reverse=True), strict=False))
        ax.clabel(lines, fmt=lambda v: f"{masses.get(v, 0):.0%} of p", fontsize=8)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel=axes[0], ylabel=axes[1], aspect="equal")
    ax.set_title(title or "Holes: prior mass where the codes are absent", fontsize=10)
    ax.legend(loc="upper right", fontsize=8, markerscale=3, framealpha=0.9)
    return fig


def _explained(centred: Tensor, basis: Tensor) -> list[float]:
    """Share of the codes' variance along each basis direction."""
    total = float(centred.pow(2).sum())
    return [float((centred @ basis[:, i]).pow(2).sum()) / max(total, 1e-300) for i in range(2)]


def holes_figure(
    codes: Tensor, prior: Tensor, holes: Tensor, title: str = "", max_points: int = 5000
) -> Tensor:
    """The picture as a (3, H, W) image: the prior's draws (in holes red, covered grey), the codes
    (blue) over them, and the prior's contours labelled by the mass they enclose.

    The contours enclose 39%, 86% and 99% of the prior's draws (N(0, I)'s 1, 2 and 3 sigma
    circles), drawn from the draws themselves, so a learned prior shows its own shape. For d > 2
    everything is projected on the codes' two leading principal directions, each labelled with
    the share of the codes' variance it holds.
    """
    return figure_to_image(holes_plot(codes, prior, holes, title, max_points))


def open_gate(model: AutoencoderModule) -> Tensor | None:
    """The gate the holes are measured through, (latent_dim,), or None for an ungated model:
    ``model.latent_usage()`` with every entry the model does not count as open
    (``model.used_latent_dims()``) set to 0, detached.

    The model's own count, so that the holes are measured on the entries it reports as active.
    LMGAE's is relative, an entry at least ``mask_threshold`` (0.1) times the largest: the
    decoder's first layer is linear in the gated code, so it reads a gate up to a common scale
    (an LMGAE whose whole mask shrank below 0.1, the decoder's weights grown to match, still reads
    its largest entries); an entry 10x below the largest is one it does not rely on.
    """
    gate = model.latent_usage()
    if gate is None:
        return None
    gate = gate.detach()
    used = model.used_latent_dims()
    if used is None:
        return gate
    keep = torch.zeros_like(gate, dtype=torch.bool)
    keep[used] = True
    return torch.where(keep, gate, torch.zeros_like(gate))


def prior_sampler(model: AutoencoderModule, gate: Tensor | None = None) -> PriorSampler:
    """Draws of ``model.sample_prior`` times ``gate`` ((latent_dim,), or None: ungated), seeded
    from the generator; training's RNG is left alone."""
    devices = [model.device] if model.device.type == "cuda" else []

    def sample(n: int, gen: torch.Generator) -> Tensor:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(int(torch.randint(2**62, (), generator=gen)))
            z = model.sample_prior(n)  # (n, latent_dim)
        return (z if gate is None else z * gate.to(z)).double().cpu()

    return sample


def gated_posterior(
    mu: Tensor, logvar: Tensor | None, gate: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """The posterior of gate * z for z ~ N(mu, exp(logvar)), (B, d) each: mean gate * mu,
    log-variance logvar + 2 log gate (-inf where the gate is 0: that coordinate is exactly 0).
    Unchanged when ``gate`` is None."""
    if gate is None:
        return mu, logvar
    gate = gate.to(mu)
    return mu * gate, None if logvar is None else logvar + 2 * gate.log()


@register_model_metric(
    "holes",
    (
        MetricKey("holes", (), "lower", "holes (prior mass)"),
        MetricKey("kl_prior_agg", (), "lower", "KL(p ‖ q) [nats]"),
        MetricKey("kl_agg_prior", (), "lower", "KL(q ‖ p) [nats]"),
        MetricKey(
            "offdiag_cov",
            (),
            None,
            "mean |off-diagonal covariance| of the codes",
            not_applicable="fewer than 2 active dimensions",
        ),
        MetricKey("intrinsic_dim", (), None, "intrinsic dimension of the codes"),
        MetricKey("intrinsic_dim_prior", (), None, "intrinsic dimension of prior draws"),
        MetricKey("low_dim_share", (), None, "share of codes on a lower-dimensional set"),
    ),
)
class HolesCallback(PeriodicEvaluation):
    """Aggregated-posterior holes, the two KLs, the codes' dimension, the active-dims covariance.

    Args:
        num_encodings: N, training points encoded (all of ``split`` if fewer).
        num_prior: M, draws of the model's prior (see :func:`~latentzoo.metrics.hole_stats`).
        num_reference: Most samples of q the estimators see (a random subset of the N); the
            numbers depend on it and on ``num_prior``: compare models at the same ones.
        epsilon: A prior draw is in a hole where q/p is below this.
        split: The data encoded.
        every_n_epochs: Evaluate after every k-th validation epoch and at the end of ``fit``
            (:class:`~latentzoo.callbacks.PeriodicEvaluation`); always at validate and test.
        picture: Log the ``holes/latents`` image.
        picture_path: Also write the picture to this PNG file (rank 0).
        batch_size: Encoding batch size.
        seed: Seeds the prior samples and subsets (the same on every rank and evaluation).
    """

    def __init__(
        self,
        num_encodings: int = 60_000,
        num_prior: int = 10_000,
        num_reference: int = 10_000,
        epsilon: float = 0.1,
        split: Split = "train",
        every_n_epochs: int = 5,
        picture: bool = True,
        picture_path: str | None = None,
        batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        if not 0 < epsilon < 1:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
        if min(num_encodings, num_prior, num_reference) < 4:
            raise ValueError("num_encodings, num_prior and num_reference must be >= 4")
        self.num_encodings, self.split = num_encodings, split
        self.picture, self.batch_size = picture or picture_path is not None, batch_size
        self.picture_path = picture_path
        self.metric = AggregatedPosteriorHoles(num_prior, num_reference, seed=seed, epsilon=epsilon)
        self._codes: Tensor | None = None  # this rank's codes of the last evaluation, to draw

    @classmethod
    def for_evaluation(cls, context: EvaluationContext, **options: Any) -> HolesCallback:
        """As :func:`latentzoo.evaluate` runs it: at the estimator's fixed 10,000 prior draws and
        codes whatever the spec's sample count (the estimate's resolution depends on them:
        see :mod:`latentzoo.metrics.holes`), the picture to the evaluation's folder."""
        picture = (
            None if context.picture_dir is None else str(Path(context.picture_dir) / "holes.png")
        )
        kwargs: dict[str, Any] = {"picture": False, "picture_path": picture, "seed": context.seed}
        return cls(**(kwargs | options))

    @override
    def evaluate(
        self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage
    ) -> dict[str, Tensor]:
        """Encode this rank's share of ``split`` and compute (collective) the statistics."""
        self.metric.to(model.device)
        gate = open_gate(model)  # (latent_dim,) or None; the same on every rank
        if gate is not None and not bool((gate > 0).any()):
            rank_zero_warn(f"{type(model).__name__} gates every latent dimension shut; holes "
                           "not measured")  # fmt: skip
            return {}
        for x in self.real_batches(trainer, model, self.split, self.num_encodings, self.batch_size):
            mu, logvar = model.posterior(x)  # (B, d), (B, d) or None
            self.metric.update(*gated_posterior(mu, logvar, gate))
        self.metric.set_prior(prior_sampler(model, gate))
        stats = self.metric.compute()  # every rank: gathers the posteriors
        if self.picture and trainer.is_global_zero:
            self._codes = dim_zero_cat(self.metric.mu)  # (N_rank0, d'): rank 0's codes
        self.metric.reset()
        return {k: v for k, v in stats.items() if k != "num_active"}

    @override
    def rank_zero_media(self, trainer: L.Trainer, model: AutoencoderModule, stage: Stage) -> None:
        codes, prior, holes = self._codes, self.metric.last_prior, self.metric.last_holes
        self._codes = None
        if codes is None or prior is None or holes is None:
            return
        title = (
            f"Holes of {model.display_name}: {float(holes.double().mean()):.1%} of the prior "
            f"in holes\n({len(codes):,} codes, {len(prior):,} prior draws, {stage} step "
            f"{trainer.global_step})"
        )
        image = holes_figure(codes, prior, holes, title)
        if self.picture_path is not None:
            save_png(image, Path(self.picture_path))
        else:
            log_image(trainer, "holes/latents", image)

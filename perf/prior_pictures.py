"""Tomczak-style pictures of 2-d latent spaces: encodings over each prior's density, holes marked.

Tomczak, "Deep Generative Modeling", sec. 4.4.1, draws a VAE's encodings over its prior's
contours to show the holes a N(0, I) prior leaves. This script trains, with latent_dim = 2 and
the same nets and budget, a VAE with each prior (N(0, I), MoG, VampPrior, flow) and the
Lipschitz VAE, and draws for each:

- the prior's log-density log p(z) as a filled contour over a grid (the model's own prior);
- the posterior means of test images on top, coloured by class;
- the holes: draws of the prior where the aggregated posterior of the training set has less
  than ``--epsilon`` of the prior's density (:func:`latentzoo.metrics.holes.hole_stats`, the
  estimator of ``val/holes``), as red crosses.

It writes ``<model>.png`` per model and ``priors.png`` with all of them into ``--out``::

    PYTHONPATH=. python perf/prior_pictures.py --epochs 10 --out prior_pictures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from torch import Tensor

import latentzoo.datamodules as datamodules
from latentzoo.callbacks.holes import prior_sampler
from latentzoo.datamodules.base import InMemoryDataModule, to_model_input
from latentzoo.metrics.holes import hole_stats
from latentzoo.zoo import VAE, FlowPrior, LipschitzVAE, MoG, VampPrior

MODELS = ("normal", "mog", "vamp", "flow", "lipschitz")
TITLES = {
    "normal": "VAE, N(0, I)",
    "mog": "VAE, MoG (16)",
    "vamp": "VAE, VampPrior (100)",
    "flow": "VAE, flow prior",
    "lipschitz": "Lipschitz VAE, N(0, I)",
}


def build(name: str, width: int) -> VAE:
    """The model called ``name``, latent_dim = 2, the same nets for all."""
    if name == "lipschitz":
        return LipschitzVAE(latent_dim=2, width=width)
    priors = {"normal": None, "mog": MoG(16), "vamp": VampPrior(100), "flow": FlowPrior()}
    return VAE(latent_dim=2, width=width, prior=priors[name])


@torch.no_grad()
def encode(model: VAE, x: Tensor, batch: int = 500) -> tuple[Tensor, Tensor]:
    """Posterior means and log-variances of uint8 or float data, (N, 2) each, on the CPU."""
    out = [model.posterior(to_model_input(b.to(model.device))) for b in x.split(batch)]
    return torch.cat([m for m, _ in out]).cpu(), torch.cat([v for _, v in out]).cpu()


def draw(ax: Axes, model: VAE, codes: Tensor, labels: Tensor, prior: Tensor, holes: Tensor,
         title: str) -> None:  # fmt: skip
    """The picture of one model on ``ax``."""
    pts = torch.cat([codes, prior])
    lim = max(4.0, 1.1 * float(pts.abs().quantile(0.995)))
    t = torch.linspace(-lim, lim, 300)
    gx, gy = torch.meshgrid(t, t, indexing="xy")
    with torch.no_grad():
        logp = model.prior.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1).to(model.device))
    logp = logp.cpu().view(300, 300).clamp_min(float(logp.max()) - 12)  # 12 nats of range
    filled = ax.contourf(gx.numpy(), gy.numpy(), logp.numpy(), levels=20, cmap="Blues")
    ax.figure.colorbar(filled, ax=ax, fraction=0.046, label="log p(z)")
    ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=2, alpha=0.8)
    h = prior[holes]
    ax.scatter(h[:, 0], h[:, 1], c="red", marker="x", s=10, linewidths=0.7,
               label=f"holes: {holes.double().mean():.1%} of prior draws")  # fmt: skip
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=title)
    ax.legend(loc="upper right", fontsize=7)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batches-per-epoch", type=int, default=None, help="default: all")
    p.add_argument("--data", default="FashionMNIST", help="a latentzoo datamodule class name")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--num-points", type=int, default=5000, help="test encodings drawn")
    p.add_argument("--num-prior", type=int, default=5000, help="prior draws tested for holes")
    p.add_argument("--epsilon", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("prior_pictures"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    dm: InMemoryDataModule = getattr(datamodules, args.data)()
    dm.setup("fit")
    dm.setup("test")
    assert dm.train_set is not None and dm.test_set is not None
    test_x, test_y = dm.test_set.x[: args.num_points], dm.test_set.y[: args.num_points]
    combined, axes = plt.subplots(
        1, len(args.models), figsize=(5.5 * len(args.models), 5), layout="constrained"
    )
    for ax, name in zip(list(axes) if len(args.models) > 1 else [axes], args.models, strict=True):
        L.seed_everything(args.seed)
        model = build(name, args.width)
        L.Trainer(max_epochs=args.epochs, limit_train_batches=args.batches_per_epoch,
                  limit_val_batches=0, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False).fit(model, dm)  # fmt: skip
        model.eval()
        mu, logvar = encode(model, dm.train_set.x)
        sampler = prior_sampler(model, model.latent_usage())
        stats, prior, holes = hole_stats(
            mu, logvar, num_prior=args.num_prior, num_reference=args.num_prior,
            seed=args.seed, epsilon=args.epsilon, prior_sample=sampler,
        )  # fmt: skip
        codes = encode(model, test_x)[0]
        print(f"{name}: holes {float(stats['holes']):.3f}, KL(q||p) "
              f"{float(stats['kl_agg_prior']):.3f}")  # fmt: skip
        single, one = plt.subplots(figsize=(6, 5), layout="constrained")
        for target in (one, ax):
            draw(target, model, codes, test_y, prior, holes, TITLES[name])
        single.savefig(args.out / f"{name}.png", dpi=120, bbox_inches="tight")
        plt.close(single)
    combined.savefig(args.out / "priors.png", dpi=120, bbox_inches="tight")
    print(f"pictures in {args.out}/")


if __name__ == "__main__":
    main()

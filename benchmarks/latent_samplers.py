"""Fréchet distance of one trained 2-stage VAE's samples under each latent sampler.

Trains a :class:`TwoStageVAE` on real Fashion-MNIST (Debian's files) for a few CPU minutes,
then draws ``--n-samples`` images with each sampler and measures their Fréchet distance to the
held-out test images in a fixed feature space: flattened pixels in [0, 1] (784 numbers), the
pure functions of :mod:`latentzoo.metrics.frechet`. Samplers, all decoded by the same stage 1:

- ``normal``: z ~ N(0, I) straight into stage 1 (a plain VAE's sampling);
- ``two_stage``: the model's own second stage, trained inside the same ``fit``;
- ``gmm``: a 10-component full-covariance GMM fitted to the training codes (Ghosh et al. 2020).

Two reference rows frame the numbers: training images vs test images (the floor a perfect
sampler would reach) and stage-1 reconstructions of test images. Run::

    PYTHONPATH=. python benchmarks/latent_samplers.py --stage1-epochs 3 --stage2-epochs 2
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch

from latentzoo.callbacks import LatentSampler
from latentzoo.datamodules import FashionMNIST
from latentzoo.metrics import frechet_distance_between
from latentzoo.zoo import TwoStageVAE


def pixels(images: torch.Tensor) -> torch.Tensor:
    return images.flatten(1).double()  # (N, 784), the fixed feature space


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage1-epochs", type=int, default=3)
    p.add_argument("--stage2-epochs", type=int, default=2)
    p.add_argument("--batches-per-epoch", type=int, default=100)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--n-samples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    L.seed_everything(args.seed)
    dm = FashionMNIST(batch_size=128)
    model = TwoStageVAE(
        latent_dim=args.latent_dim,
        width=args.width,
        stage1_epochs=args.stage1_epochs,
        stage2_epochs=args.stage2_epochs,
    )
    trainer = L.Trainer(
        max_epochs=args.stage1_epochs + args.stage2_epochs,
        limit_train_batches=args.batches_per_epoch,
        limit_val_batches=10,
        logger=False,
        enable_checkpointing=False,
        accelerator="cpu",
    )
    start = time.perf_counter()
    trainer.fit(model, dm)
    train_s = time.perf_counter() - start
    model.eval()
    dm.setup("test")
    assert dm.test_set is not None and dm.train_set is not None
    held_out = pixels(dm.test_set.x.float() / 255)  # (10000, 784)
    n = min(args.n_samples, len(held_out))
    rows: dict[str, float] = {}
    with torch.no_grad():
        train_images = dm.train_set.x[torch.randperm(len(dm.train_set.x))[:n]].float() / 255
        rows["reference: training images"] = float(
            frechet_distance_between(pixels(train_images), held_out)
        )
        recon = torch.cat([model.reconstruct(x.float() / 255) for x in dm.test_set.x.split(500)])
        rows["reference: reconstructions"] = float(
            frechet_distance_between(pixels(recon), held_out)
        )
    for kind in ("normal", "two_stage_model", "gmm"):
        if kind == "two_stage_model":
            model.set_latent_sampler(None)  # the model's own prior: its second stage
        else:
            LatentSampler(kind=kind).attach(trainer, model)
        torch.manual_seed(args.seed)
        with torch.no_grad():
            samples = torch.cat([model.sample(500) for _ in range(n // 500)])
        rows[kind] = float(frechet_distance_between(pixels(samples), held_out))

    print(
        f"\nTwoStageVAE on Fashion-MNIST: {args.stage1_epochs}+{args.stage2_epochs} epochs of "
        f"{args.batches_per_epoch} batches of 128, trained in {train_s:.0f} s (CPU); "
        f"stage-1 gamma {float(model.likelihood.gamma.detach()):.4f}, stage-2 gamma "
        f"{float(model.stage2.likelihood.gamma.detach()):.4f}"
    )
    print(
        f"Fréchet distance to {len(held_out)} held-out test images, flattened pixels, "
        f"{n} samples each\n"
    )
    base = rows["normal"]
    print(f"{'sampler':<30} {'FD':>10} {'FD / normal':>12}")
    for name, fd in rows.items():
        print(f"{name:<30} {fd:>10.3f} {fd / base:>12.3f}")


if __name__ == "__main__":
    main()

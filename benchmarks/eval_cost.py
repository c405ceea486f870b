"""Cost of the evaluation callbacks on CPU: FID with and without the real-statistics cache, and the
aggregated-posterior holes metric at N = 60,000 encodings, M = 10,000 prior samples, d = 64.

    python benchmarks/eval_cost.py --data FashionMNIST --extractor domain \
        --evaluator evaluators/FashionMNIST.ckpt
    python benchmarks/eval_cost.py --data Synthetic --extractor pixels

The FID rows time ``FIDCallback.evaluate`` (sample, extract, FID + KID + reconstruction FID) on
an untrained VAE: first with an empty cache (real features are extracted and saved), then in a
fresh callback that reads the cache. Never run by CI.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import lightning as L
import torch

from latentzoo.callbacks import FIDCallback
from latentzoo.datamodules import FashionMNIST, InMemoryDataModule, Synthetic
from latentzoo.metrics.holes import hole_stats
from latentzoo.zoo import VAE


def time_fid(dm: InMemoryDataModule, args: argparse.Namespace, cache_dir: str) -> float:
    model = VAE(data_shape=dm.data_shape, latent_dim=16)
    cb = FIDCallback(
        extractor=args.extractor,
        evaluator=args.evaluator,
        inception_weights=args.inception_weights,
        num_samples=args.num_samples,
        num_real=args.num_real,
        cache_dir=cache_dir,
    )
    trainer = L.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_test_batches=0,
        callbacks=[cb],
    )
    trainer.test(model, dm, verbose=False)  # runs setup; limit_test_batches=0 skips the loop
    start = time.perf_counter()
    with torch.no_grad():
        cb.evaluate(trainer, model, "test")
    return time.perf_counter() - start


def time_holes(n: int, m: int, d: int) -> float:
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen) * 0.1 - 2
    start = time.perf_counter()
    hole_stats(mu, logvar, num_prior=m, num_reference=m)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["FashionMNIST", "Synthetic"], default="Synthetic")
    parser.add_argument("--extractor", choices=["inception", "pixels", "domain"], default="pixels")
    parser.add_argument("--evaluator", default=None)
    parser.add_argument("--inception-weights", default=None)
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--num-real", type=int, default=10_000)
    parser.add_argument(
        "--holes", type=int, nargs=3, default=[60_000, 10_000, 64], metavar=("N", "M", "D")
    )
    args = parser.parse_args()
    dm = FashionMNIST() if args.data == "FashionMNIST" else Synthetic(num_train=20_000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    with tempfile.TemporaryDirectory() as cache:
        cold = time_fid(dm, args, cache)
        warm = time_fid(dm, args, cache)
    print(
        f"\nFID evaluation ({args.data}, {args.extractor}, {args.num_samples} samples, "
        f"{args.num_real} real):"
    )
    print(f"  {'no cache (real features extracted)':<40} {cold:8.2f} s")
    print(f"  {'cached real statistics':<40} {warm:8.2f} s   ({cold / warm:.2f}x faster)")
    n, m, d = args.holes
    t = time_holes(n, m, d)
    print(f"\nholes metric, N={n}, M={m}, d={d} (Gaussian posteriors, {m} draws of q):")
    print(f"  {'hole_stats':<40} {t:8.2f} s")


if __name__ == "__main__":
    main()

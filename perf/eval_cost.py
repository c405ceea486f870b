"""Cost of the evaluation callbacks on CPU: FID with and without the real-statistics cache, and the
aggregated-posterior holes metric at N = 60,000 encodings, M = 10,000 prior samples, d = 64.

    python perf/eval_cost.py --data FashionMNIST --extractor domain \
        --evaluator evaluators/FashionMNIST.ckpt
    python perf/eval_cost.py --data Synthetic --extractor pixels --out eval_cost.json
    python perf/eval_cost.py --inception-speed 40 --rounds 3

The FID rows time ``FIDCallback.evaluate`` (sample, extract, FID + KID + reconstruction FID) on
an untrained VAE: first with an empty cache (real features are extracted and saved), then in a
fresh callback that reads the cache. ``--inception-speed N`` instead times Inception features of
N real Fashion-MNIST images (random ones without the data) on the export as it ships
(``cpu_fast=False``, what every CPU run did before) and on the CPU path, interleaved round by
round, with the ratio per round and the largest feature difference. ``--out`` writes every number
printed as JSON. Never run by CI.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import lightning as L
import torch
from measure import run_record, write_record

from latentzoo.callbacks import FIDCallback
from latentzoo.datamodules import FashionMNIST, InMemoryDataModule, Synthetic
from latentzoo.metrics.extractors import InceptionFeatures
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


def inception_speed(n: int, rounds: int) -> dict[str, Any]:
    try:
        x = FashionMNIST().load_split(train=False)[0][:n].float() / 255  # (n, 1, 28, 28)
    except FileNotFoundError:
        x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    paths = {"export": InceptionFeatures(cpu_fast=False), "cpu_fast": InceptionFeatures()}
    times: dict[str, list[float]] = {name: [] for name in paths}
    feats = {}
    with torch.no_grad():
        for net in paths.values():
            net(x[:2])  # warm-up: oneDNN primitives, the CPU copy of the network
        for _ in range(rounds):
            for name, net in paths.items():
                start = time.perf_counter()
                feats[name] = net(x)
                times[name].append(time.perf_counter() - start)
    rate = {name: n / statistics.median(t) for name, t in times.items()}
    ratios = [old / new for old, new in zip(times["export"], times["cpu_fast"], strict=True)]
    ref = feats["export"]
    diff = ((feats["cpu_fast"] - ref).abs().max() / ref.abs().max()).item()
    print(f"\nInception features, {n} Fashion-MNIST images, median of {rounds} rounds:")
    for name, r in rate.items():
        print(f"  {name:<40} {r:8.2f} images/s")
    print(
        f"  {'cpu_fast / export':<40} {statistics.median(ratios):8.2f}x   rounds: "
        + " ".join(f"{r:.2f}" for r in ratios)
    )
    print(f"  {'largest feature difference':<40} {diff:8.1e} of the largest feature")
    return {"images": n, "seconds": times, "images_per_s": rate, "speedup_rounds": ratios,
            "speedup": statistics.median(ratios), "max_diff_vs_export": diff}  # fmt: skip


def fid_and_holes(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds of the FID evaluation without and with the cache, and of the holes metric."""
    dm = FashionMNIST() if args.data == "FashionMNIST" else Synthetic(num_train=20_000)
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
    return {"fid_seconds": {"no_cache": cold, "cached": warm}, "cache_speedup": cold / warm,
            "holes_seconds": t}  # fmt: skip


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
    parser.add_argument("--inception-speed", type=int, default=0, metavar="N")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="JSON file of every number printed")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    results = run_record(args, torch.device("cpu"))
    if args.inception_speed:
        results.update(inception_speed(args.inception_speed, args.rounds))
    else:
        results.update(fid_and_holes(args))
    write_record(args.out, results)
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

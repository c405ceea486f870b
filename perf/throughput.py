"""Training throughput on Fashion-MNIST: latentzoo's Trainer vs. a plain loop vs. torchvision data.

Three ways to train the same VAE (same nets, data, batch size, optimizer) for a fixed number of
steps, in one process, interleaved over several rounds: each ratio is taken within a round (the
runs it compares are seconds apart) and the median over rounds is reported, so that a machine
whose load changes during the benchmark still gives a fair ratio.

- ``latentzoo``: ``lightning.Trainer.fit`` on :class:`latentzoo.datamodules.FashionMNIST`
  (uint8 tensors in memory, whole-batch indexing, float conversion after transfer);
  ``latentzoo CLI`` adds the callbacks ``latentzoo fit`` always adds (the finite-loss guard and
  ``last.ckpt``).
- ``plain``: a hand-written PyTorch loop over the same in-memory tensors.
- ``torchvision``: the same hand-written loop fed by ``torchvision.datasets.FashionMNIST`` with
  ``ToTensor`` through a ``DataLoader`` (one PIL image per sample, then a collate).

It also times the two data paths alone (iterate, convert, no model). Prints images/s, the median
over rounds, and the ratios; ``--out`` writes them as JSON, after every round. Needs Debian's
``dataset-fashion-mnist`` or the IDX files under ``--data-dir``.

    python perf/throughput.py --steps 200 --rounds 3 --out throughput.json
    python perf/throughput.py --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from measure import run_record, write_record
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from latentzoo.callbacks import FiniteLossGuard, LastCheckpoint
from latentzoo.datamodules import FashionMNIST
from latentzoo.zoo import VAE

RATIOS = {  # label: (numerator, denominator), both names of runs
    "latentzoo / plain loop": ("latentzoo", "plain"),
    "latentzoo CLI / plain loop": ("latentzoo CLI", "plain"),
    "latentzoo / torchvision loop": ("latentzoo", "torchvision"),
    "data path latentzoo / torchvision": ("data: latentzoo", "data: torchvision"),
}


class StepTimer(L.Callback):
    """Wall time from the end of the warm-up steps to the end of training."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def make_model(data: FashionMNIST, seed: int) -> VAE:
    torch.manual_seed(seed)
    return VAE(data_shape=data.data_shape, latent_dim=16, likelihood="bernoulli")


def run_latentzoo(
    data: FashionMNIST, steps: int, warmup: int, precision: str, cli_callbacks: bool = False
) -> float:
    """``cli_callbacks``: also the callbacks every ``latentzoo fit`` adds (the finite-loss guard
    and ``last.ckpt`` on its 5-minute clock), to measure what they cost per step."""
    timer = StepTimer(warmup)
    extra: list[L.Callback] = []
    if cli_callbacks:
        folder = tempfile.mkdtemp(prefix="throughput-")
        extra = [FiniteLossGuard(), LastCheckpoint(dirpath=folder)]
    trainer = L.Trainer(
        max_steps=steps + warmup, accelerator="cpu", devices=1, precision=precision,  # type: ignore[arg-type]
        logger=False, enable_checkpointing=cli_callbacks, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[timer, *extra],
    )  # fmt: skip
    trainer.fit(make_model(data, 0), datamodule=data)
    return steps * data.batch_size / (timer.end - timer.start)


def train_loop(
    model: VAE, batches: Iterator[torch.Tensor], steps: int, warmup: int, precision: str
) -> float:
    """The plain loop both hand-written variants share; returns images/s after warm-up."""
    opt = torch.optim.Adam(model.parameters(), lr=model.lr)
    model.train()
    autocast = precision == "bf16-mixed"
    start, n = 0.0, 0
    for step in range(steps + warmup):
        if step == warmup:
            start = time.perf_counter()
        x = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model.compute_losses(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(x) if step >= warmup else 0
    return n / (time.perf_counter() - start)


def forever(loader: Callable[[], Iterator[torch.Tensor]]) -> Iterator[torch.Tensor]:
    while True:
        yield from loader()


def in_memory_batches(data: FashionMNIST) -> Iterator[torch.Tensor]:
    def epoch() -> Iterator[torch.Tensor]:
        for x, _ in data.train_dataloader():
            yield x.float().div_(255.0)

    return forever(epoch)


def torchvision_batches(root: str, batch_size: int) -> Iterator[torch.Tensor]:
    ds = datasets.FashionMNIST(root, train=True, transform=transforms.ToTensor(), download=False)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True)
    return forever(lambda: (x for x, _ in loader))


def data_only(batches: Iterator[torch.Tensor], steps: int, batch_size: int) -> float:
    next(batches)
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return steps * batch_size / (time.perf_counter() - start)


def torchvision_root(data: FashionMNIST, tmp: str) -> str:
    """torchvision wants the uncompressed IDX files under ``root/FashionMNIST/raw``."""
    raw = Path(tmp) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.md5s:
        src = data.find(name)
        if src is None:
            raise FileNotFoundError(f"{name} not found; install dataset-fashion-mnist")
        dst = raw / name.removesuffix(".gz")
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as f, open(dst, "wb") as out:
            shutil.copyfileobj(f, out)
    return tmp


def summarize(rates: dict[str, list[float]]) -> dict[str, Any]:
    """Median and max images/s of every run, and each ratio in every round and its median."""
    table = [
        {"run": name, "images_per_s": statistics.median(v), "max_images_per_s": max(v)}
        for name, v in rates.items()
    ]
    ratios = {}
    for label, (a, b) in RATIOS.items():
        per_round = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
        ratios[label] = {"of": [a, b], "median": statistics.median(per_round), "rounds": per_round}
    return {"table": table, "ratios": ratios}


def print_summary(summary: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\nVAE on Fashion-MNIST, batch {args.batch_size}, {args.steps} steps, "
          f"precision {args.precision}, {torch.get_num_threads()} threads, "
          f"median over {args.rounds} rounds")  # fmt: skip
    for row in summary["table"]:
        print(f"  {row['run']:<18} {row['images_per_s']:>12,.0f} img/s   "
              f"(max {row['max_images_per_s']:,.0f})")  # fmt: skip
    for label, ratio in summary["ratios"].items():
        rounds = " ".join(f"{r:.3f}" for r in ratio["rounds"])
        print(f"  {label:<34} {ratio['median']:8.3f}   rounds: {rounds}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=200, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out", default=None, help="JSON file of every round's numbers and the medians")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    data = FashionMNIST(data_dir=args.data_dir, batch_size=args.batch_size)
    data.setup("fit")
    rates: dict[str, list[float]] = {}
    results: dict[str, Any] = {
        **run_record(args, torch.device("cpu")), "images_per_s": rates,
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(data, tmp)
        runs: dict[str, Callable[[], float]] = {
            "latentzoo": lambda: run_latentzoo(data, args.steps, args.warmup, args.precision),
            "latentzoo CLI": lambda: run_latentzoo(data, args.steps, args.warmup, args.precision,
                                                   cli_callbacks=True),
            "plain": lambda: train_loop(make_model(data, 0), in_memory_batches(data),
                                        args.steps, args.warmup, args.precision),
            "torchvision": lambda: train_loop(make_model(data, 0),
                                              torchvision_batches(root, args.batch_size),
                                              args.steps, args.warmup, args.precision),
            "data: latentzoo": lambda: data_only(in_memory_batches(data), 200, args.batch_size),
            "data: torchvision": lambda: data_only(torchvision_batches(root, args.batch_size),
                                                   200, args.batch_size),
        }  # fmt: skip
        for r in range(args.rounds):
            for name, fn in runs.items():
                rates.setdefault(name, []).append(fn())
                print(f"round {r + 1}/{args.rounds}  {name:<18} {rates[name][-1]:>10,.0f} img/s",
                      flush=True)  # fmt: skip
            results.update(summarize(rates))
            write_record(args.out, results)
    print_summary(results, args)
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

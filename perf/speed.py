"""Training speed of every zoo model against the machine's peak, speed settings side by side.

For each registered model at its default nets on Fashion-MNIST's shape (1, 28, 28), random uint8
images in memory (``measure.RandomImages``; no data files), and each *variant* (a set of
:class:`~latentzoo.zoo.speed.SpeedSettings` plus precision, threads and batch size), two runs of
``--warmup`` + ``--steps`` batches are timed after their warm-up:

- ``latentzoo``: ``lightning.Trainer.fit`` with the callbacks every ``latentzoo fit`` adds (the
  finite-loss guard, ``last.ckpt`` on its clock; ``--bare-trainer`` leaves them out);
- ``plain``: the same batches through the model's own losses, optimizers and hooks in a
  hand-written loop (``measure.plain_step``), for the phased models every phase with its
  optimizer, as the engine steps them.

Each round times the fp32 peak (a ``--peak-size``^3 matrix product) and then every model and
variant, interleaved, so ratios are taken within a round and the median over rounds is reported:
a machine whose load changes during the run still gives fair ratios, but the absolute numbers
are only worth what the machine's quiet was. FLOPs per step are counted once per model and batch
size with torch's flop counter on one eager fp32 step (every phase of the phased models; the
2-stage VAE trains stage 1 in these first steps). Reported per model and variant: GFLOP per step,
images/s, achieved GFLOP/s, its fraction of the peak, latentzoo / plain, and the speed-up over the
first variant; JSON with every round's numbers goes to ``--out``.

A variant is ``NAME:SETTING,SETTING,...`` with settings ``channels_last``, ``optimizer=default|
foreach|fused``, ``compile=off|default|reduce-overhead|max-autotune-no-cudagraphs``,
``precision=32-true|bf16-mixed``, ``threads=N``, ``batch=N``; ``NAME:`` alone is the default step.

    python perf/speed.py --steps 50 --rounds 3 --out speed.json     # before, channels_last, default
    python perf/speed.py --models VAE WAEGP \\
        --variant before:channels_last=false,optimizer=default \\
        --variant default: --variant compiled:compile=default
    python perf/speed.py --variant b128: --variant b256:batch=256 --variant t1:threads=1
    python perf/speed.py --device cuda --variant eager: --variant compiled:compile=default \\
        --variant graphs:compile=reduce-overhead --variant bf16:precision=bf16-mixed
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import statistics
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import lightning as L
import torch
from measure import (
    RandomImages,
    StepTimer,
    device_name,
    forever,
    peaks,
    plain_step,
    step_flops,
    sync,
)

from latentzoo.callbacks import FiniteLossGuard, LastCheckpoint
from latentzoo.datamodules.base import to_model_input
from latentzoo.zoo import AutoencoderModule, create_model, list_models
from latentzoo.zoo.speed import SpeedSettings, speed_up

DEFAULT_VARIANTS = [
    "before:channels_last=false,optimizer=default",  # NCHW, torch's default optimizer loop
    "channels_last:channels_last=true,optimizer=default",
    "default:",  # SpeedSettings(): channels_last and the fused (or foreach) optimizer kernels
]


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    speed: SpeedSettings = dataclasses.field(default_factory=SpeedSettings)
    precision: str = "32-true"
    threads: int | None = None
    batch_size: int = 128


def parse_variant(text: str, batch_size: int) -> Variant:
    name, _, spec = text.partition(":")
    speed: dict[str, Any] = {}
    other: dict[str, Any] = {"batch_size": batch_size}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key == "channels_last":
            speed[key] = value in ("", "true", "1")
        elif key in ("optimizer", "compile"):
            speed[key] = value
        elif key == "precision":
            other[key] = value
        elif key in ("threads", "batch"):
            other["threads" if key == "threads" else "batch_size"] = int(value)
        else:
            raise SystemExit(f"variant {text!r}: unknown setting {key!r}")
    return Variant(name or "default", SpeedSettings(**speed), **other)


def build(name: str, variant: Variant, seed: int) -> AutoencoderModule:
    L.seed_everything(seed, verbose=False)
    model = create_model(name, data_shape=(1, 28, 28))
    model.speed = variant.speed
    return model


def run_latentzoo(
    name: str, v: Variant, data: RandomImages, args: argparse.Namespace
) -> tuple[float, float]:
    timer = StepTimer(args.warmup, args.steps)
    callbacks: list[L.Callback] = [timer]
    folder = tempfile.mkdtemp(prefix="speed-")
    if not args.bare_trainer:
        callbacks += [FiniteLossGuard(), LastCheckpoint(dirpath=folder)]
    trainer = L.Trainer(
        max_steps=args.warmup + args.steps, accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1, precision=v.precision, logger=False, enable_checkpointing=not args.bare_trainer,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, callbacks=callbacks, default_root_dir=folder,
    )  # fmt: skip
    trainer.fit(build(name, v, args.seed), datamodule=data)
    loss = float(trainer.callback_metrics["train/loss"])
    return args.steps * v.batch_size / (timer.end - timer.start), loss


def run_plain(
    name: str, v: Variant, data: RandomImages, args: argparse.Namespace
) -> tuple[float, float]:
    device = torch.device(args.device)
    model = build(name, v, args.seed).to(device)
    speed_up(model, v.speed, model.compiled_nets)
    optimizers = model.configure_optimizers()
    optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
    bf16 = v.precision == "bf16-mixed"
    autocast = (
        (lambda: torch.autocast(device.type, torch.bfloat16)) if bf16 else contextlib.nullcontext
    )
    step = plain_step(model.train(), optimizers, autocast)
    batches = forever(data)
    start, loss = 0.0, torch.zeros(())
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            sync(device)
            start = time.perf_counter()
        x = to_model_input(
            next(batches)[0].to(device, non_blocking=True), model.input_memory_format
        )
        loss = step(x)
    sync(device)
    return args.steps * v.batch_size / (time.perf_counter() - start), float(loss)


def count_flops(name: str, batch_size: int, seed: int) -> int:
    """One eager fp32 step on the CPU (FLOPs do not depend on the device or the settings); for
    a model that takes one step of its cycle per batch (``fresh_batches``), a whole cycle's
    FLOPs over its batches: the mean per batch."""
    model = build(name, Variant("count"), seed)
    optimizers = model.configure_optimizers()
    step = plain_step(model.train(), optimizers if isinstance(optimizers, list) else [optimizers],
                      contextlib.nullcontext)  # fmt: skip
    x = torch.rand(batch_size, 1, 28, 28)
    batches = 1
    if getattr(model, "fresh_batches", False):
        batches = sum(p.repeats for p in model.phases() if p.is_active())
    return step_flops(lambda: [step(x) for _ in range(batches)]) // batches


def attempt(fn: Callable[[], tuple[float, float]], label: str) -> tuple[float, float] | None:
    try:
        return fn()
    except Exception:  # one failing variant (a compiler missing) must not lose the others
        print(f"  FAILED {label}:\n{traceback.format_exc(limit=3)}", flush=True)
        return None


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def summarize(results: dict[str, Any], variants: list[Variant]) -> list[dict[str, Any]]:
    """One row per model and variant: medians over rounds of the numbers and of the ratios."""
    rows = []
    fp32 = [p["fp32"] for p in results["peak_gflops"]]
    for model, runs in results["runs"].items():
        first = runs[variants[0].name]["latentzoo"]
        for v in variants:
            lz, plain = runs[v.name]["latentzoo"], runs[v.name]["plain"]
            gflop = results["flop_per_step"][model][str(v.batch_size)] / 1e9
            achieved = [x / v.batch_size * gflop for x in lz]  # GFLOP/s in each round
            rows.append({
                "model": model, "variant": v.name, "gflop_per_step": gflop,
                "img_s": statistics.median(lz), "plain_img_s": statistics.median(plain),
                "gflop_s": statistics.median(achieved),
                "of_fp32_peak": median_ratio(achieved, fp32),
                "latentzoo_over_plain": median_ratio(lz, plain),
                "speedup": median_ratio(lz, first), "loss": runs[v.name]["loss"][-1],
            })  # fmt: skip
    return rows


def print_table(rows: list[dict[str, Any]], first: str) -> None:
    print(f"\n| model | variant | GFLOP/step | img/s | plain img/s | GFLOP/s | of fp32 peak "
          f"| latentzoo/plain | x {first} | loss |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [
            r["model"], r["variant"], f"{r['gflop_per_step']:.2f}", f"{r['img_s']:,.0f}",
            f"{r['plain_img_s']:,.0f}", f"{r['gflop_s']:.1f}", f"{r['of_fp32_peak']:.3f}",
            f"{r['latentzoo_over_plain']:.3f}", f"{r['speedup']:.3f}", f"{r['loss']:.6g}",
        ]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


def measure_round(
    results: dict[str, Any], variants: list[Variant], datas: dict[int, RandomImages], args: Any
) -> None:
    """The peak, then every model and variant, latentzoo and plain, appended to ``results``."""
    device = torch.device(args.device)
    results["peak_gflops"].append(peaks(device, args.peak_size))
    print(f"peak GFLOP/s {results['peak_gflops'][-1]}", flush=True)
    threads = torch.get_num_threads()
    for m in results["runs"]:
        # Compiled code is shared by the runs of one model (its nets' graphs are the same) and
        # dropped before the next model's: every net's forward counts against one code object's
        # recompile limit (8), past which torch runs it eagerly without a word.
        torch.compiler.reset()
        for v in variants:
            torch.set_num_threads(v.threads or threads)
            rec = results["runs"][m][v.name]
            for kind, run in (("latentzoo", run_latentzoo), ("plain", run_plain)):
                out = attempt(partial(run, m, v, datas[v.batch_size], args), f"{m} {v.name} {kind}")
                speed, loss = out or (float("nan"), float("nan"))
                rec[kind].append(speed)
                rec["loss" if kind == "latentzoo" else "plain_loss"].append(loss)
            torch.set_num_threads(threads)
            print(f"  {m:<13} {v.name:<16} latentzoo {rec['latentzoo'][-1]:>9,.0f}  "
                  f"plain {rec['plain'][-1]:>9,.0f} img/s", flush=True)  # fmt: skip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, help="registered names (default: all)")
    p.add_argument("--variant", action="append", default=None, help="NAME:SETTINGS, repeatable")
    p.add_argument("--steps", type=int, default=50, help="timed batches per run")
    p.add_argument("--warmup", type=int, default=10, help="untimed batches first (compiling)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128, help="of variants without batch=N")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for all")
    p.add_argument("--interop-threads", type=int, default=None, help="set once, at the start")
    p.add_argument("--peak-size", type=int, default=None, help="n of the n^3 peak product "
                   "(default 2048; 8192 on cuda)")  # fmt: skip
    p.add_argument("--bare-trainer", action="store_true", help="no guard and last.ckpt callbacks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON file of every round's numbers and the table")
    args = p.parse_args()
    args.peak_size = args.peak_size or (8192 if args.device == "cuda" else 2048)
    return args


def quiet() -> None:
    """Lightning's per-run banners and the warnings every run repeats, out of the table's way."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")


def main() -> None:
    args = parse_args()
    quiet()
    if args.interop_threads:
        torch.set_num_interop_threads(args.interop_threads)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [parse_variant(t, args.batch_size) for t in args.variant or DEFAULT_VARIANTS]
    models = args.models or list_models()
    datas = {b: RandomImages(batch_size=b) for b in sorted({v.batch_size for v in variants})}
    empty = {"latentzoo": [], "plain": [], "loss": [], "plain_loss": []}
    results: dict[str, Any] = {
        "device": device_name(torch.device(args.device)), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "args": vars(args),
        "variants": [dataclasses.asdict(v) for v in variants], "peak_gflops": [],
        "runs": {m: {v.name: {k: [] for k in empty} for v in variants} for m in models},
        "flop_per_step": {m: {str(b): count_flops(m, b, args.seed) for b in datas} for m in models},
    }  # fmt: skip
    print(f"{results['device']}; torch {torch.__version__}; {len(models)} models x "
          f"{len(variants)} variants x {args.rounds} rounds of {args.steps} steps")  # fmt: skip
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", flush=True)
        measure_round(results, variants, datas, args)
        results["table"] = summarize(results, variants)
        if args.out:  # after every round: a run stopped by a time limit keeps the rounds done
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
    print_table(results["table"], variants[0].name)
    peak = statistics.median(p["fp32"] for p in results["peak_gflops"])
    print(
        f"\nmedians over {args.rounds} rounds; fp32 peak {peak:,.0f} GFLOP/s ({args.peak_size}^3)"
    )
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

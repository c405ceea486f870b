"""Inception features (FID) on the CPU against the machine's fp32 peak, each way of running them.

Each *variant* is ``NAME:SETTINGS`` with ``export`` (fid-helper's TorchScript as it ships, the
reference pipeline), ``runner=eager|jit|inductor`` (:func:`latentzoo.metrics.inception.cpu_runner`),
``resize=tf1|matrices`` (torch-fidelity's TF1 resize or ``resize_by_matrices``), ``batch=N``
(images per forward) and ``threads=N``. Every round times the fp32 peak (a 2048^3
matrix product), then ``--images`` Fashion-MNIST test images (random 28x28 images without the
data) through every variant's :class:`~latentzoo.metrics.extractors.InceptionFeatures`, the whole
pipeline (8-bit quantisation, TF1 resize to 299x299, network); ratios are per round, medians over
rounds. GFLOP per image is counted with torch's flop formulas on the network (the resize is not
counted). Every variant's largest feature difference from the export is printed too (the tests
hold them within 1e-4). ``--images`` should be a multiple of every variant's batch (the compiled
runners pad a short batch). ``--account [VARIANT]`` adds what the account below needs for that
variant (default: the first that is not the export); ``--out`` writes everything as JSON.

    python perf/inception_speed.py --images 32 --rounds 3 --out inception.json
    python perf/inception_speed.py --variant export:export --variant eager:runner=eager \\
        --variant eager32:runner=eager,batch=32 --variant jit:runner=jit \\
        --variant inductor:runner=inductor --variant t1:runner=eager,threads=1 --account

Measured account of where the rest goes (TEMPLATE: the lead fills it from ``--account`` output;
numbers not measured here are left blank):

- machine: ___ (``device`` in the JSON), fp32 peak ___ GFLOP/s (median of ``peak_gflops``).
- best variant ___: ___ images/s x ___ GFLOP/image = ___ GFLOP/s = ___ of the peak
  (target 0.8).
- per image, by stage (``account.stages_ms_per_image``): quantisation ___ ms, TF1 resize
  ___ ms, layout copy ___ ms, network ___ ms; the stages outside the network are ___ of it.
- inside the network (``account.ops``, torch.profiler, self CPU time): convolutions ___ ms
  (___ GFLOP/s, ___ of the peak), ReLU ___ ms, pools ___ ms, concatenations ___ ms, layout
  reorders (``to_dense``/``to_mkldnn``/``copy_``) ___ ms, other ___ ms.
- convolutions by shape (``account.convs``): the 35x35 and 17x17 blocks run at ___ of the peak,
  the 8x8 blocks (mixed_9, mixed_10: ___% of the FLOPs) at ___, the stem (149x149, 3 and 32
  channels in) at ___; what keeps each from the peak: ___ (weight reorder per call, small
  spatial maps, 1x7/7x1 kernels, memory-bound 1x1 convolutions).
- so the remaining gap to the peak is ___ (stages outside the network) + ___ (elementwise and
  layout work in it) + ___ (convolutions below peak).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from measure import FlopCount, device_name, peaks
from torch import Tensor
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from latentzoo.datamodules import FashionMNIST
from latentzoo.metrics.extractors import INCEPTION_SIZE, InceptionFeatures
from latentzoo.metrics.inception import PoolFeatures, cpu_runner, resize_by_matrices

CHANNELS_LAST = torch.channels_last
DEFAULT_VARIANTS = [
    "export:export",
    "eager:runner=eager",
    "eager32:runner=eager,batch=32",
    "jit:runner=jit",
    "inductor:runner=inductor",
    "matrices:runner=eager,resize=matrices",
]


def parse_variant(text: str) -> dict[str, Any]:
    name, _, spec = text.partition(":")
    v: dict[str, Any] = {"name": name, "export": False, "runner": "eager", "batch": 16,
                         "resize": "tf1"}  # fmt: skip
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key == "export":
            v["export"] = True
        elif key in ("runner", "resize"):
            v[key] = value
        elif key in ("batch", "threads"):
            v[key] = int(value)
        else:
            raise SystemExit(f"variant {text!r}: unknown setting {key!r}")
    return v


def extractor(v: dict[str, Any]) -> InceptionFeatures:
    if v["export"]:
        return InceptionFeatures(cpu_fast=False)
    return InceptionFeatures(cpu_runner=v["runner"], cpu_batch=v["batch"], cpu_resize=v["resize"])


def images(n: int) -> Tensor:
    """n Fashion-MNIST test images in [0, 1], (n, 1, 28, 28); random ones without the data."""
    try:
        return FashionMNIST().load_split(train=False)[0][:n].float() / 255
    except FileNotFoundError:
        print("Fashion-MNIST not found: random 28x28 images (the cost is the same)")
        return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def gflop_per_image() -> float:
    net = PoolFeatures()  # random weights: FLOPs depend on the shapes only
    with torch.no_grad(), FlopCount() as counter:
        net(torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE))
    return counter.total / 1e9


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def account(v: dict[str, Any], x: Tensor) -> dict[str, Any]:
    """Per-image time of each stage of the CPU path, and the network's ops by torch.profiler."""
    net = cpu_runner(PoolFeatures.from_export(InceptionFeatures(cpu_fast=False).net),
                     v["runner"], v["batch"])  # fmt: skip
    chunk = x[: v["batch"]]
    size = (INCEPTION_SIZE, INCEPTION_SIZE)
    stages: dict[str, float] = {}
    with torch.no_grad():
        for _ in range(2):  # the second pass is the one kept (the first builds, compiles)
            start = time.perf_counter()
            u8 = (chunk.float() * 255).round()
            t_q = time.perf_counter()
            big = (
                resize_by_matrices(u8, INCEPTION_SIZE) if v["resize"] == "matrices"
                else interpolate_bilinear_2d_like_tensorflow1x(u8, size=size, align_corners=False)
            )  # fmt: skip
            t_r = time.perf_counter()
            y = ((big - 128) / 128).expand(-1, 3, -1, -1).contiguous(memory_format=CHANNELS_LAST)
            t_l = time.perf_counter()
            net(y)
            t_n = time.perf_counter()
            stages = {"quantise": t_q - start, "resize": t_r - t_q, "layout": t_l - t_r,
                      "network": t_n - t_l}  # fmt: skip
        with torch.profiler.profile(record_shapes=True, with_flops=True) as prof:
            net(y)
    per_image = {k: 1e3 * t / len(chunk) for k, t in stages.items()}
    ops = prof.key_averages()
    by_shape = prof.key_averages(group_by_input_shape=True)
    return {
        "variant": v["name"], "batch": len(chunk), "stages_ms_per_image": per_image,
        "ops": sorted(([e.key, e.count, e.self_cpu_time_total / 1e3] for e in ops),
                      key=lambda r: -r[2])[:20],
        "convs": sorted(([e.key, str(e.input_shapes[:2]), e.count, e.cpu_time_total / 1e3,
                          (e.flops or 0) / 1e9] for e in by_shape if e.key == "aten::conv2d"),
                        key=lambda r: -r[3]),  # name, shapes, calls, ms, GFLOP (all calls)
    }  # fmt: skip


def measure(variants: list[dict[str, Any]], x: Tensor, args: argparse.Namespace) -> dict[str, Any]:
    """Warm every variant up, then ``args.rounds`` rounds of the peak and every variant."""
    threads, cpu = torch.get_num_threads(), torch.device("cpu")
    nets = {v["name"]: extractor(v) for v in variants}
    with torch.no_grad():
        for v in variants:  # warm-up: oneDNN primitives, the CPU copy, compiling
            torch.set_num_threads(v.get("threads", threads))
            nets[v["name"]](x[: v["batch"] + 1])
    torch.set_num_threads(threads)
    rates: dict[str, list[float]] = {v["name"]: [] for v in variants}
    results: dict[str, Any] = {
        "device": device_name(cpu), "torch": torch.__version__, "threads": threads,
        "gflop_per_image": gflop_per_image(), "variants": variants, "images": len(x),
        "peak_gflops": [], "images_per_s": rates, "features": {},
    }  # fmt: skip
    for r in range(args.rounds):
        results["peak_gflops"].append(peaks(cpu, args.peak_size)["fp32"])
        for v in variants:
            torch.set_num_threads(v.get("threads", threads))
            with torch.no_grad():
                seconds, results["features"][v["name"]] = timed(partial(nets[v["name"]], x))
            torch.set_num_threads(threads)
            rates[v["name"]].append(len(x) / seconds)
            print(
                f"round {r + 1}  {v['name']:<12} {rates[v['name']][-1]:7.2f} images/s", flush=True
            )
    return results


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def table(results: dict[str, Any], variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians of images/s and of the per-round ratios to the peak and to the first variant."""
    peak, rates, gflop = results["peak_gflops"], results["images_per_s"], results["gflop_per_image"]
    feats = results.pop("features")
    ref, first = feats.get("export"), variants[0]["name"]
    rows = []
    for v in variants:
        rate = rates[v["name"]]
        diff = (feats[v["name"]] - ref).abs().max() / ref.abs().max() if ref is not None else None
        rows.append({
            "variant": v["name"], "images_per_s": statistics.median(rate),
            "gflop_s": statistics.median(rate) * gflop,
            "of_fp32_peak": median_ratio([r * gflop for r in rate], peak),
            "speedup": median_ratio(rate, rates[first]),
            "max_diff_vs_export": float("nan") if diff is None else float(diff),
        })  # fmt: skip
    print(f"\n{results['device']}; fp32 peak {statistics.median(peak):.0f} GFLOP/s; "
          f"{gflop:.2f} GFLOP per image; medians over {len(peak)} rounds\n")  # fmt: skip
    print(f"| variant | images/s | GFLOP/s | of fp32 peak | x {first} | max diff vs export |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['variant']} | {row['images_per_s']:.2f} | {row['gflop_s']:.1f} | "
              f"{row['of_fp32_peak']:.3f} | {row['speedup']:.3f} | "
              f"{row['max_diff_vs_export']:.1e} |")  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variant", action="append", default=None, help="NAME:SETTINGS, repeatable")
    p.add_argument("--images", type=int, default=32, help="images per variant and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--account", nargs="?", const="", default=None, metavar="VARIANT",
                   help="stage times and profile of VARIANT (first non-export)")  # fmt: skip
    p.add_argument("--out", default=None, help="JSON file")
    args = p.parse_args()
    variants = [parse_variant(t) for t in args.variant or DEFAULT_VARIANTS]
    x = images(args.images)
    results = measure(variants, x, args)
    results["table"] = table(results, variants)
    if args.account is not None:
        named = [v for v in variants if v["name"] == args.account]
        chosen = (named or [v for v in variants if not v["export"]])[0]
        results["account"] = account(chosen, x)
        print(json.dumps(results["account"], indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1, default=str)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

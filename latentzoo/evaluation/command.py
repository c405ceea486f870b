"""``latentzoo evaluate``: score a checkpoint, or saved samples, with every metric that applies.

    latentzoo evaluate --ckpt_path runs/VAE-FashionMNIST/version_0/checkpoints/last.ckpt
    latentzoo evaluate --ckpt_path last.ckpt --data FashionMNIST --sampler [prior,gmm] \\
        --extractor [inception,domain] --evaluator evaluators/FashionMNIST.ckpt --output r.json
    latentzoo evaluate --samples samples.pt --data FashionMNIST --output results.json
    latentzoo evaluate --list_metrics

The options after ``--data`` are those of :class:`~latentzoo.evaluation.spec.EvaluationSpec`;
the work is :func:`latentzoo.evaluate` (a checkpoint) or
:func:`~latentzoo.evaluation.core.score_samples` (saved samples: a tensor file, (N, C, H, W) in
[0, 1] or (N, D), or a folder of PNG/JPEG images; the feature metrics only). The data set
defaults to the run's: a checkpoint in ``version_N/checkpoints/`` finds the ``config.yaml``
LightningCLI saved in ``version_N/``, and ``--data.ARG`` overrides one argument. The numbers go
to a printed table and, with ``--output``, to a JSON file (non-finite values as ``null``). A bad
file given fails in one line naming it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

import torch
from jsonargparse import ArgumentParser, Namespace

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.evaluation.core import evaluate, score_samples
from latentzoo.evaluation.files import BadInputError, load_model, load_samples, run_config
from latentzoo.evaluation.results import Results
from latentzoo.evaluation.spec import EvaluationSpec
from latentzoo.metrics.registry import METRICS
from latentzoo.zoo.checkpoints import read_checkpoint

__all__ = ["build_parser", "evaluate_command"]

Accelerator = Literal["auto", "cpu", "gpu"]
SPEC_FIELDS = [f.name for f in dataclasses.fields(EvaluationSpec)]


def build_parser() -> ArgumentParser:
    """The options of ``latentzoo evaluate``: what to score, ``--data``, then the spec's."""
    parser = ArgumentParser(prog="latentzoo evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", type=str | None, default=None, help="Checkpoint to score")
    parser.add_argument(
        "--samples",
        type=str | None,
        default=None,
        help="Score saved samples instead: a .pt tensor file or a folder of PNG/JPEG images",
    )
    parser.add_subclass_arguments(InMemoryDataModule, "data", required=False)
    parser.add_class_arguments(EvaluationSpec, nested_key=None, as_group=True)
    parser.add_argument("--accelerator", type=Accelerator, default="auto")
    parser.add_argument("--output", type=str | None, default=None, help="JSON file to write")
    parser.add_argument(
        "--list_metrics", action="store_true", help="List the registered metrics and exit"
    )
    return parser


def fail(message: str) -> NoReturn:
    """One line on stderr, exit status 2."""
    print(f"latentzoo evaluate: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def resolve_data_argv(argv: list[str]) -> list[str]:
    """``argv`` with the run's ``--data`` (from its ``config.yaml``) put first when none is given,
    so that ``--data.ARG`` still overrides it."""
    if any(a == "--data" or a.startswith("--data=") for a in argv):
        return argv
    ckpt = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--ckpt_path"), None)
    ckpt = ckpt or next((a.split("=", 1)[1] for a in argv if a.startswith("--ckpt_path=")), None)
    config = run_config(ckpt) if ckpt and Path(ckpt).is_file() else None
    if config is None or "data" not in config:
        return argv
    return ["--data", json.dumps(config["data"]), *argv]


def check_args(args: Namespace) -> None:
    """Errors the user can fix, before anything is loaded: the files first, then ``--data``."""
    if (args.ckpt_path is None) == (args.samples is None):
        fail("give one of --ckpt_path (a trained model) or --samples (saved samples)")
    for option in ("ckpt_path", "samples"):
        if args[option] is not None and not Path(args[option]).exists():
            fail(f"--{option} {args[option]}: no such file or folder")
    if args.ckpt_path is not None:
        read_checkpoint(args.ckpt_path)  # a truncated or foreign file says so now
    if args.data is None:
        where = (
            "no config.yaml beside the checkpoint's run (version_N/config.yaml) to read it from"
            if args.ckpt_path is not None
            else "saved samples are compared with a data set"
        )
        fail(f"--data is required: {where}; e.g. --data FashionMNIST")


def spec_of(args: Namespace) -> EvaluationSpec:
    """The spec the options give; a ValueError's sentence when they do not make one."""
    values = {name: args[name] for name in SPEC_FIELDS}
    try:
        return EvaluationSpec(**values)
    except ValueError as err:
        fail(str(err))


def list_metrics() -> None:
    for name, info in METRICS.items():
        keys = ", ".join(k.name for k in info.all_keys())
        extra = "" if info.default else " (off unless named)"
        print(f"{name:<18} {info.kind:<8} {keys}{extra}")
        if info.description:
            print(f"{'':<18} {info.description}")


def flat_metrics(results: Results) -> dict[str, float]:
    """The first row as ``test/<key>``: unqualified keys when there is one extractor."""
    sampler = next(iter(results.rows))
    single = len(results.spec.extractors) == 1
    return {f"test/{k}": v for k, v in results.values(sampler, qualified=not single).items()}


def report(args: Namespace, data: InMemoryDataModule, results: Results) -> None:
    """Print the table and write the JSON file."""
    spec = results.spec
    scored = args.ckpt_path if args.samples is None else args.samples
    source = f"sampler {spec.sampler}" if args.samples is None else f"vs {spec.split} split"
    title = (
        f"\nlatentzoo evaluate: {scored} on {type(data).__name__} ({source}, "
        f"extractor {spec.extractor}, N = {spec.num_samples} vs {results.num_real} "
        f"{spec.split}, seed {spec.seed})"
    )
    metrics = flat_metrics(results)
    width = max((len(k) for k in metrics), default=0)
    print("\n".join([title, *(f"  {k:<{width}}  {v:.6g}" for k, v in metrics.items())]))
    if len(results.rows) > 1:
        print(results.table("\nevery sampler:"))
    if args.output is None:
        return
    result: dict[str, Any] = {
        "ckpt_path": args.ckpt_path,
        "samples": args.samples,
        "data": {"class_path": args.data.class_path, "init_args": dict(args.data.init_args)},
        "sampler": None if args.samples is not None else spec.sampler,
        "extractor": spec.extractor,
        "num_samples": spec.num_samples,
        "num_real": results.num_real,
        **results.to_dict(),
        "metrics": {k: v if math.isfinite(v) else None for k, v in metrics.items()},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1, default=str))
    print(f"  written to {args.output}")


def evaluate_command(argv: Sequence[str]) -> None:
    """``latentzoo evaluate ...``; see the module docstring."""
    parser = build_parser()
    try:
        args = parser.parse_args(resolve_data_argv(list(argv)))
        if args.list_metrics:
            return list_metrics()
        check_args(args)
        spec = spec_of(args)
        data = parser.instantiate_classes(args).data
        if args.samples is not None:
            samples = load_samples(Path(args.samples), data.data_shape)
            device = "cuda" if args.accelerator != "cpu" and torch.cuda.is_available() else "cpu"
            results = score_samples(samples, data, spec, device=device)
        else:
            model = load_model(args.ckpt_path)
            results = evaluate(model, data, spec, accelerator=args.accelerator)
    except BadInputError as err:
        fail(str(err))
    except ValueError as err:  # e.g. the checkpoint's data shape is not the data set's
        fail(str(err).splitlines()[0])
    report(args, data, results)
    sys.stdout.flush()

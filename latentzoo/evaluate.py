"""``latentzoo evaluate``: score a checkpoint, or saved samples, with every metric that applies.

    latentzoo evaluate --ckpt_path runs/VAE-FashionMNIST/version_0/checkpoints/last.ckpt
    latentzoo evaluate --ckpt_path last.ckpt --data FashionMNIST --sampler gmm \\
        --extractor domain --evaluator evaluators/FashionMNIST.ckpt --output results.json
    latentzoo evaluate --samples samples.pt --data FashionMNIST --output results.json

A checkpoint is measured by the training callbacks themselves, run through ``Trainer.test``:
FID, KID, precision and recall (:class:`~latentzoo.callbacks.FIDCallback`), holes
(:class:`~latentzoo.callbacks.HolesCallback`), active dimensions
(:class:`~latentzoo.callbacks.ActiveDims`), class diversity
(:class:`~latentzoo.callbacks.DiversityCallback`, when ``--evaluator`` is given), and the model's
own test losses; samples come from ``--sampler`` (:class:`~latentzoo.callbacks.LatentSampler`).
The data set defaults to the run's: a checkpoint in ``version_N/checkpoints/`` finds the
``config.yaml`` LightningCLI saved in ``version_N/``, and ``--data.ARG`` overrides one argument.

Saved samples (``--samples``: a tensor file, (N, C, H, W) in [0, 1] or (N, D), or a folder of
PNG/JPEG images) are compared with ``--split`` of ``--data``: FID, KID, precision and recall only,
since there is no model to encode with. The numbers go to a printed table and, with ``--output``,
to a JSON file (non-finite values as ``null``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import yaml
from jsonargparse import ArgumentParser, Namespace
from jsonargparse.typing import PositiveInt
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from latentzoo.callbacks import (
    ActiveDims,
    DiversityCallback,
    FIDCallback,
    HolesCallback,
    LatentSampler,
)
from latentzoo.callbacks.batches import Split

SamplerKind = str
from latentzoo.datamodules import InMemoryDataModule
from latentzoo.datamodules.base import to_model_input
from latentzoo.loading import load
from latentzoo.metrics.extractors import ExtractorName, FeatureExtractor, build_extractor  # noqa
from latentzoo.metrics.fid import FrechetDistance, KernelDistance
from latentzoo.metrics.precision_recall import PrecisionRecall
from latentzoo.zoo import AutoencoderModule

__all__ = ["build_parser", "evaluate_command", "load_model", "load_samples", "run_config"]

Accelerator = Literal["auto", "cpu", "gpu"]


def build_parser() -> ArgumentParser:
    """The options of ``latentzoo evaluate``; ``--data`` takes a datamodule as ``fit`` does."""
    parser = ArgumentParser(prog="latentzoo evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", type=str | None, default=None, help="Checkpoint to score")
    parser.add_argument(
        "--samples",
        type=str | None,
        default=None,
        help="Score saved samples instead: a .pt tensor file or a folder of PNG/JPEG images",
    )
    parser.add_subclass_arguments(InMemoryDataModule, "data", required=False)
    parser.add_argument("--sampler", type=SamplerKind, default="prior", help="Latent sampler")
    parser.add_argument("--extractor", type=ExtractorName, default="inception")
    parser.add_argument("--inception_weights", type=str | None, default=None)
    parser.add_argument("--evaluator", type=str | None, default=None, help="Domain evaluator")
    parser.add_argument("--num_samples", type=PositiveInt, default=10_000)
    parser.add_argument("--num_real", type=PositiveInt, default=10_000)
    parser.add_argument(
        "--class_radius",
        type=int,
        default=0,
        help="Prior points of the class-radius estimate (with --evaluator); 0: off",
    )
    parser.add_argument(
        "--split", type=Split, default="train", help="Reference split of FID/KID/precision/recall"
    )
    parser.add_argument("--batch_size", type=PositiveInt, default=250)
    parser.add_argument("--seed", type=int, default=0, help="Seeds the samples and the metrics")
    parser.add_argument("--accelerator", type=Accelerator, default="auto")
    parser.add_argument("--cache_dir", type=str, default=".latentzoo_cache/fid")
    parser.add_argument("--output", type=str | None, default=None, help="JSON file to write")
    return parser


def run_config(ckpt_path: str | Path) -> dict[str, Any] | None:
    """The run's saved ``config.yaml`` (``version_N/`` above ``checkpoints/``), if there is one."""
    path = Path(ckpt_path).resolve().parent.parent / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def load_model(ckpt_path: str | Path) -> AutoencoderModule:
    """The model a checkpoint holds, whatever its class (:func:`latentzoo.loading.load`)."""
    if not Path(ckpt_path).is_file():
        raise SystemExit(f"latentzoo evaluate: no checkpoint at {ckpt_path}")
    return load(ckpt_path, map_location="cpu")


def checkpoint_callbacks(args: Namespace, data: InMemoryDataModule) -> list[L.Callback]:
    """The evaluation callbacks, with the sampler first so that ``sample`` uses it.

    ``args`` may also say ``holes``, ``active_dims`` or ``diversity: False`` (skip those: they do
    not depend on the extractor, so ``latentzoo benchmark`` measures them once per sampler or
    cell) and ``pictures: True`` (the holes picture, as a PNG under the trainer's root folder).
    """
    n, n_real = args.num_samples, min(args.num_real, len(_split(data, args.split)))
    callbacks: list[L.Callback] = [
        LatentSampler(kind=args.sampler, seed=args.seed),
        FIDCallback(
            extractor=args.extractor,
            inception_weights=args.inception_weights,
            evaluator=args.evaluator,
            num_samples=n,
            num_real=n_real,  # KID's subset size is capped by it: no more than the split holds
            real_split=args.split,
            batch_size=args.batch_size,
            cache_dir=args.cache_dir,
            seed=args.seed,
        ),
    ]
    if args.get("holes", True):
        picture = bool(args.get("pictures", False))
        callbacks.append(
            HolesCallback(num_prior=n, num_reference=n, picture=picture, seed=args.seed)
        )
    if args.get("active_dims", True):
        callbacks.append(ActiveDims())
    if args.evaluator is not None and args.get("diversity", True):
        radius = args.get("class_radius", 0)
        callbacks.append(
            DiversityCallback(
                args.evaluator, num_samples=n, class_radius_samples=radius, seed=args.seed
            )
        )
    return callbacks


def _split(data: InMemoryDataModule, split: Split) -> Tensor:
    """The ``x`` tensor of one split (set up here if needed)."""
    if getattr(data, f"{split}_set") is None:
        data.setup("test" if split == "test" else "fit")
    return getattr(data, f"{split}_set").x


def score_checkpoint(
    args: Namespace, data: InMemoryDataModule, callbacks: Sequence[L.Callback] | None = None
) -> dict[str, float]:
    """Every ``test/`` number the callbacks and the model's test step give for the checkpoint.

    ``callbacks`` default to :func:`checkpoint_callbacks`; a caller may pass those with its own
    added, or reuse a fitted :class:`LatentSampler` (it refits only for other weights).
    ``args.media_dir``, if set, is the trainer's root folder, where pictures go;
    ``args.progress_bar: False`` hides the test loop's bar.
    """
    model = load_model(args.ckpt_path)
    if tuple(model.data_shape) != tuple(data.data_shape):
        raise SystemExit(
            f"latentzoo evaluate: the checkpoint's model takes data of shape "
            f"{tuple(model.data_shape)}, --data {type(data).__name__} has {data.data_shape}"
        )
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=list(checkpoint_callbacks(args, data) if callbacks is None else callbacks),
        default_root_dir=args.get("media_dir"),
        enable_progress_bar=args.get("progress_bar", True),
    )
    trainer.test(model, datamodule=data, verbose=False)
    metrics = trainer.callback_metrics
    return {k: float(v) for k, v in sorted(metrics.items()) if v.numel() == 1}


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_samples(path: Path, data_shape: tuple[int, ...]) -> Tensor:
    """Saved samples as floats, (N, *data_shape): a tensor file or a folder of images.

    A tensor may be uint8 (0..255) or float in [0, 1] for images; images in a folder are read
    in sorted name order, as grey or RGB as ``data_shape`` has 1 or 3 channels.
    """
    if path.is_dir():
        x = _read_images(path, data_shape)
    else:
        x = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(x, Tensor):
            raise SystemExit(f"latentzoo evaluate: {path} holds a {type(x).__name__}, not a tensor")
    if tuple(x.shape[1:]) != tuple(data_shape) or len(x) < 2:
        raise SystemExit(
            f"latentzoo evaluate: {path} has samples of shape {tuple(x.shape)}; the data set "
            f"needs (N >= 2, {', '.join(map(str, data_shape))})"
        )
    x = to_model_input(x)  # uint8 -> [0, 1]
    if len(data_shape) == 3 and (x.min() < 0 or x.max() > 1):
        raise SystemExit(
            f"latentzoo evaluate: {path} has images outside [0, 1] ({float(x.min()):.3g} to "
            f"{float(x.max()):.3g}); save them as uint8 or as floats in [0, 1]"
        )
    return x.float()


def _read_images(folder: Path, data_shape: tuple[int, ...]) -> Tensor:
    import numpy as np
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(data_shape) != 3 or data_shape[0] not in (1, 3) or not files:
        raise SystemExit(
            f"latentzoo evaluate: --samples {folder} needs PNG/JPEG files and an image data set "
            f"with 1 or 3 channels (data shape {data_shape})"
        )
    mode = "L" if data_shape[0] == 1 else "RGB"
    arrays = [np.asarray(Image.open(f).convert(mode)) for f in files]
    x = torch.from_numpy(np.stack(arrays))  # (N, H, W) or (N, H, W, 3) uint8
    return x[:, None] if mode == "L" else x.permute(0, 3, 1, 2)


def _features(
    extractor: FeatureExtractor, x: Tensor, batch_size: int, device: str, what: str
) -> Tensor:
    from tqdm.auto import tqdm

    batches = tqdm(x.split(batch_size), desc=f"features of {what}", leave=False, delay=2.0)
    with torch.no_grad():
        return torch.cat([extractor(to_model_input(b.to(device))).double() for b in batches])


def score_samples(samples: Tensor, data: InMemoryDataModule, args: Namespace) -> dict[str, float]:
    """FID, KID, precision and recall of ``samples`` against the first ``num_real`` of
    ``--split``, with the metric classes FIDCallback uses (FIDCallback itself draws from a
    model)."""
    real = _split(data, args.split)[: args.num_real]
    device = "cuda" if args.accelerator != "cpu" and torch.cuda.is_available() else "cpu"
    extractor = build_extractor(
        args.extractor, data.data_shape, args.inception_weights, args.evaluator
    ).to(device)
    real_f = _features(extractor, real, args.batch_size, device, "real data")  # (N, F)
    fake_f = _features(extractor, samples[: args.num_samples], args.batch_size, device, "samples")
    fid, pr = FrechetDistance(extractor.num_features), PrecisionRecall()
    kid = KernelDistance(extractor.num_features, subset_size=min(1000, len(real_f), len(fake_f)))
    fid.update(real_f, real=True)
    fid.update(fake_f, real=False)
    for metric in (kid, pr):  # float32 features, as in FIDCallback
        metric.update(real_f.float(), real=True)
        metric.update(fake_f.float(), real=False)
    values = {"fid": fid.compute()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)  # KID's random subsets
        values["kid"], values["kid_std"] = kid.compute()
    values["precision"], values["recall"] = pr.compute()
    return {f"test/{k}": float(v) for k, v in values.items()}  # the keys of a checkpoint's


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


def check_args(parser: ArgumentParser, args: Namespace) -> None:
    """Errors the user can fix, before anything is loaded."""
    if (args.ckpt_path is None) == (args.samples is None):
        parser.error("give one of --ckpt_path (a trained model) or --samples (saved samples)")
    for option in ("ckpt_path", "samples"):
        if args[option] is not None and not Path(args[option]).exists():
            parser.error(f"--{option} {args[option]}: no such file or folder")
    if args.data is None:
        where = (
            "no config.yaml beside the checkpoint's run (version_N/config.yaml) to read it from"
            if args.ckpt_path is not None
            else "saved samples are compared with a data set"
        )
        parser.error(f"--data is required: {where}; e.g. --data FashionMNIST")


def format_table(title: str, values: dict[str, float]) -> str:
    width = max((len(k) for k in values), default=0)
    return "\n".join([title, *(f"  {k:<{width}}  {v:.6g}" for k, v in values.items())])


@rank_zero_only
def report(args: Namespace, data: InMemoryDataModule, values: dict[str, float]) -> None:
    """Print the table and write the JSON file."""
    scored = args.ckpt_path if args.samples is None else args.samples
    source = f"sampler {args.sampler}" if args.samples is None else f"vs {args.split} split"
    title = (
        f"\nlatentzoo evaluate: {scored} on {type(data).__name__} ({source}, "
        f"extractor {args.extractor})"
    )
    print(format_table(title, values))
    if args.output is None:
        return
    result = {
        "ckpt_path": args.ckpt_path,
        "samples": args.samples,
        "data": {"class_path": args.data.class_path, "init_args": dict(args.data.init_args)},
        "sampler": None if args.samples is not None else args.sampler,
        "extractor": args.extractor,
        "num_samples": args.num_samples,
        "num_real": args.num_real,
        "metrics": {k: v if math.isfinite(v) else None for k, v in values.items()},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1, default=str))
    print(f"  written to {args.output}")


def evaluate_command(argv: Sequence[str]) -> None:
    """``latentzoo evaluate ...``; see the module docstring."""
    parser = build_parser()
    args = parser.parse_args(resolve_data_argv(list(argv)))
    check_args(parser, args)
    data = parser.instantiate_classes(args).data
    if args.samples is not None:
        samples = load_samples(Path(args.samples), data.data_shape)
        values = score_samples(samples, data, args)
    else:
        values = score_checkpoint(args, data)
    report(args, data, values)
    sys.stdout.flush()

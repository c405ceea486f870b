"""Run the cells of a suite one after another, then score them.

Each cell trains in its own process, ``python -m latentzoo fit --config <its config.yaml>`` (with
``--ckpt_path`` its ``last.ckpt`` when a killed run left one), its output going to ``fit.log``;
then it is scored in this process by :func:`latentzoo.evaluate.score_checkpoint`, once per sampler
and extractor, on the test split. A cell whose training fails is recorded (``failed.json``) and
the others go on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jsonargparse import Namespace
from tqdm.auto import tqdm

from latentzoo.benchmark.cellfiles import CellFiles, read_json, write_json
from latentzoo.benchmark.pictures import SampleFigure
from latentzoo.benchmark.schema import Cell, Suite
from latentzoo.datamodules import InMemoryDataModule
from latentzoo.evaluate import build_parser, checkpoint_callbacks, score_checkpoint

__all__ = ["EXTRACTOR_KEYS", "RunOptions", "ensure_evaluator", "run_cells", "score_cell"]

# The numbers FIDCallback gives, which differ by extractor: ``fid`` becomes ``fid_<extractor>``.
EXTRACTOR_KEYS = ("fid", "fid_recon", "kid", "kid_std", "precision", "recall")
# Numbers of the model and its prior, the same for every sampler: measured with the first one.
SAMPLER_FREE = ("holes", "kl_prior_agg", "kl_agg_prior", "offdiag_cov", "active_dims")
FAIL_TAIL = 15  # lines of a failed fit's output kept in failed.json


@dataclass
class RunOptions:
    accelerator: str = "auto"
    collect: bool = False  # never train
    progress_bar: bool = False  # Lightning's per-batch bar in the cells' fit.log
    inception_weights: str | None = None


def ensure_evaluator(suite: Suite, data: dict, out: Path, accelerator: str) -> Path:
    """``OUT/evaluators/<DataModule>.ckpt``, trained by ``latentzoo evaluator fit`` if missing."""
    path = out / "evaluators" / f"{data['class_path'].rsplit('.', 1)[-1]}.ckpt"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["--data", json.dumps(data), "--save_path", str(path)]
    args += [f"--trainer.{k}={json.dumps(v)}" for k, v in (suite.evaluator or {}).items()]
    args += [f"--trainer.accelerator={accelerator}"]
    tqdm.write(f"training the domain evaluator for {data['class_path']} -> {path}")
    cmd = [sys.executable, "-m", "latentzoo", "evaluator", "fit", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not path.is_file():
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-FAIL_TAIL:])
        raise RuntimeError(f"latentzoo evaluator fit failed ({done.returncode}):\n{tail}")
    return path


def train_cell(files: CellFiles, options: RunOptions) -> tuple[int, float, bool]:
    """Run the cell's ``latentzoo fit``; (exit status, wall seconds, resumed)."""
    resumed = files.last.is_file()
    cmd = [sys.executable, "-m", "latentzoo", "fit", "--config", str(files.config)]
    if resumed:
        cmd += ["--ckpt_path", str(files.last)]
    if options.accelerator != "auto":
        cmd += [f"--trainer.accelerator={options.accelerator}"]
    files.failed.unlink(missing_ok=True)
    start = time.perf_counter()
    with files.log.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    if code == 0:
        files.record_trained(wall, resumed, "latentzoo benchmark")
    else:
        tail = files.log.read_text().splitlines()[-FAIL_TAIL:]
        write_json(files.failed, {"exit_code": code, "command": cmd, "output_tail": tail})
    return code, wall, resumed


def _args(
    files: CellFiles, sampler: str, extractor: str, evaluator: Path | None, options: RunOptions
) -> Namespace:
    cell, m = files.cell, files.cell.metrics
    argv = [
        "--ckpt_path",
        str(files.last),
        "--data",
        json.dumps(cell.fit["data"]),
        "--sampler",
        sampler,
        "--extractor",
        extractor,
        "--split",
        "test",
        f"--num_samples={m.num_samples}",
        f"--num_real={m.num_real}",
        f"--seed={cell.seed}",
        f"--accelerator={options.accelerator}",
    ]
    if evaluator is not None:
        argv += ["--evaluator", str(evaluator)]
    if options.inception_weights:
        argv += ["--inception_weights", options.inception_weights]
    return build_parser().parse_args(argv)


def score_cell(files: CellFiles, suite: Suite, evaluator: Path | None, options: RunOptions) -> None:
    """Write ``scores/<sampler>.json`` for every sampler not scored yet, and the pictures."""
    cell, m = files.cell, files.cell.metrics
    data: InMemoryDataModule | None = None
    for i, sampler in enumerate(suite.samplers):
        if files.scored(sampler):
            continue
        first = read_json(files.scores(suite.samplers[0])) if i else None
        metrics: dict[str, float | None] = {}
        for j, extractor in enumerate(m.extractors):
            args = _args(files, sampler, extractor, evaluator, options)
            measure_cell = j == 0 and first is None  # holes, active dims: once per cell
            args.holes, args.active_dims = measure_cell and m.holes, measure_cell and m.active_dims
            args.diversity = j == 0 and m.diversity
            args.class_radius = m.class_radius
            args.pictures, args.media_dir = measure_cell, str(files.media / sampler)
            args.progress_bar = False
            if data is None:
                data = build_parser().instantiate_classes(args).data
            callbacks = checkpoint_callbacks(args, data)
            if j == 0:
                fitted = callbacks[0]  # the LatentSampler, fitted once for every extractor
                title = f"{cell.name} {sampler}"
                callbacks.append(SampleFigure(files.samples_png(sampler), cell.seed, title))
            callbacks[0] = fitted
            values = score_checkpoint(args, data, callbacks)
            for key, value in values.items():
                name = key.removeprefix("test/")
                if name in EXTRACTOR_KEYS:
                    metrics[f"{name}_{extractor}"] = value
                elif j == 0:
                    metrics[name] = value
            _keep_holes_picture(files, sampler)
        if first is not None:  # the cell's own numbers, measured with the first sampler
            metrics.update({k: v for k, v in first["metrics"].items() if k in SAMPLER_FREE})
        write_json(
            files.scores(sampler),
            {
                "cell": cell.name,
                "model": cell.model,
                "point": cell.point,
                "seed": cell.seed,
                "sampler": sampler,
                "extractors": list(m.extractors),
                "num_samples": m.num_samples,
                "num_real": m.num_real,
                "metrics": metrics,
            },
        )


def _keep_holes_picture(files: CellFiles, sampler: str) -> None:
    folder = files.media / sampler / "images"  # where log_image puts them without a logger
    pictures = sorted(folder.glob("holes_latents_step*.png"))
    if pictures:
        pictures[-1].replace(files.holes_png)
    for path in (folder, folder.parent):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


@dataclass
class Outcome:
    cell: Cell
    action: str  # what this run did: skipped, trained, resumed, scored, failed, missing
    wall_s: float = 0.0
    detail: str = ""


def run_cells(suite: Suite, cells: list[Cell], out: Path, options: RunOptions) -> list[Outcome]:
    """Train (unless ``collect``) and score every cell; one progress bar over the cells."""
    outcomes = []
    evaluators: dict[str, Path] = {}
    bar = tqdm(cells, desc=f"benchmark {suite.name}", unit="cell", dynamic_ncols=True)
    for cell in bar:
        files = CellFiles(cell, out)
        bar.set_postfix_str(cell.name)
        outcome = _run_cell(files, suite, options, evaluators)
        outcomes.append(outcome)
        took = f" in {outcome.wall_s:.0f} s" if outcome.wall_s else ""
        tqdm.write(f"{cell.name}: {outcome.action}{took}{outcome.detail}")
    return outcomes


def _run_cell(
    files: CellFiles, suite: Suite, options: RunOptions, evaluators: dict[str, Path]
) -> Outcome:
    status = files.status(suite.samplers)
    if status == "scored":
        return Outcome(files.cell, "skipped (already scored)")
    action, wall = "trained before", 0.0
    if status in ("partial", "new", "failed"):
        if options.collect:
            return Outcome(files.cell, "missing", detail=f": not trained ({status})")
        code, wall, resumed = train_cell(files, options)
        if code != 0:
            return Outcome(
                files.cell, "failed", wall, f": latentzoo fit exit status {code}, see {files.log}"
            )
        action = "resumed and trained" if resumed else "trained"
    elif not files.trained.is_file():
        files.record_trained(None, False, "last.ckpt at the budget (trained elsewhere)")
    evaluator = None
    if files.cell.metrics.diversity or "domain" in files.cell.metrics.extractors:
        data = files.cell.fit["data"]
        key = data["class_path"]
        if key not in evaluators:
            evaluators[key] = ensure_evaluator(suite, data, files.out, options.accelerator)
        evaluator = evaluators[key]
    start = time.perf_counter()
    score_cell(files, suite, evaluator, options)
    return Outcome(
        files.cell, f"{action}, scored", wall, f" (scoring {time.perf_counter() - start:.0f} s)"
    )

"""Run the cells of a suite one after another, then score them.

Each cell trains in its own process, ``python -m latentzoo fit --config <its config.yaml>`` (with
``--ckpt_path`` its ``last.ckpt`` when a killed run left one), its output going to ``fit.log``;
then it is scored in this process by :func:`latentzoo.evaluate` with the cell's evaluation spec
(every sampler, every extractor), its pictures in ``media/``. A cell whose training fails is
recorded (``failed.json``) and the others go on.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from latentzoo.benchmark.cellfiles import CellFiles, write_json
from latentzoo.benchmark.floor import measure_floors
from latentzoo.benchmark.schema import EVALUATOR_PENDING, Cell, Suite, spec_record
from latentzoo.datamodules import DATAMODULES
from latentzoo.evaluation import evaluate, load_model

__all__ = ["RunOptions", "ensure_evaluator", "run_cells", "score_cell"]

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


def stop_child(child: subprocess.Popen[bytes], grace_s: float = 60.0) -> None:
    """Stop a cell's ``latentzoo fit`` as a scheduler would: SIGTERM, which saves its
    ``last.ckpt`` and ends it, then SIGKILL if it has not ended within ``grace_s``."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(grace_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


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
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = child.wait()
        except BaseException:  # Ctrl-C, SIGTERM: the cell keeps a last.ckpt to resume from
            stop_child(child)
            raise
    wall = time.perf_counter() - start
    if code == 0:
        files.record_trained(wall, resumed, "latentzoo benchmark")
    else:
        tail = files.log.read_text().splitlines()[-FAIL_TAIL:]
        write_json(files.failed, {"exit_code": code, "command": cmd, "output_tail": tail})
    return code, wall, resumed


def score_cell(files: CellFiles, suite: Suite, evaluator: Path | None, options: RunOptions) -> None:
    """Write ``scores/<sampler>.json`` for every sampler not scored yet, and the pictures."""
    cell = files.cell
    todo = [s for s in suite.samplers if not files.scored(s)]
    if not todo:
        return
    spec = dataclasses.replace(
        cell.metrics,
        sampler=todo,
        evaluator=str(evaluator)
        if cell.metrics.evaluator == EVALUATOR_PENDING
        else cell.metrics.evaluator,
        inception_weights=options.inception_weights or cell.metrics.inception_weights,
    )
    data = cell.fit["data"]
    datamodule = DATAMODULES.resolve(data["class_path"])(**data["init_args"])
    results = evaluate(
        load_model(files.last),
        datamodule,
        spec,
        out_dir=files.media,
        accelerator=options.accelerator,
        progress=options.progress_bar,
    )
    for sampler, row in results.rows.items():
        write_json(
            files.scores(sampler),
            {
                "cell": cell.name,
                "model": cell.model,
                "point": cell.point,
                "seed": cell.seed,
                "sampler": sampler,
                "spec": spec_record(cell.metrics),
                "protocol": results.protocol(),
                "metrics": row,
            },
        )


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
        timed = outcome.wall_s and "scored" not in outcome.action  # a scored one says it itself
        took = f" in {outcome.wall_s:.0f} s" if timed else ""
        tqdm.write(f"{cell.name}: {outcome.action}{took}{outcome.detail}")
    scored = [o.cell for o in outcomes if "scored" in o.action]
    measure_floors(
        suite,
        scored,
        out,
        lambda data: _evaluator(suite, data, out, options, evaluators),
        options.accelerator,
    )
    return outcomes


def _evaluator(
    suite: Suite, data: dict, out: Path, options: RunOptions, evaluators: dict[str, Path]
) -> Path:
    """The domain evaluator of a data spec, trained once per run (and once per OUT)."""
    key = data["class_path"]
    if key not in evaluators:
        evaluators[key] = ensure_evaluator(suite, data, out, options.accelerator)
    return evaluators[key]


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
    if files.cell.metrics.evaluator == EVALUATOR_PENDING:
        try:
            evaluator = _evaluator(suite, files.cell.fit["data"], files.out, options, evaluators)
        except RuntimeError as err:  # the evaluator's training failed: said once per cell
            reason = (str(err).splitlines() or [""])[0]
            return Outcome(files.cell, "scoring failed", wall, f": {reason}")
    start = time.perf_counter()
    try:
        score_cell(files, suite, evaluator, options)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # one cell's scoring must not end the run: the rest go on
        reason = (str(err).splitlines() or [type(err).__name__])[0][:300]
        return Outcome(files.cell, "scoring failed", wall, f": {type(err).__name__}: {reason}")
    trained = f"training {wall:.0f} s, " if wall else ""
    took = f" ({trained}scoring {time.perf_counter() - start:.0f} s)"
    return Outcome(files.cell, f"{action}, scored", wall, took)

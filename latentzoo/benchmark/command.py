"""``latentzoo benchmark SUITE``: train, score and report a suite of models (see
``docs/benchmarks.md``).

    latentzoo benchmark --list                        # the built-in suites
    latentzoo benchmark fashion-cpu                   # run it here, cell after cell
    latentzoo benchmark fashion-cpu --list            # its cells and how far each got
    latentzoo benchmark fashion-cpu --prepare         # write the cell configs and cells.txt
    latentzoo benchmark fashion-cpu --collect         # score cells trained elsewhere, report

A killed run, run again, skips the cells it scored and resumes the one it was training.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from jsonargparse import ArgumentParser, Namespace

from latentzoo.benchmark.cellfiles import CellFiles, read_json
from latentzoo.benchmark.lock import FolderLockedError, hold
from latentzoo.benchmark.plots import grid_plots
from latentzoo.benchmark.report import Figures, log_wandb, write_report
from latentzoo.benchmark.results import collect_rows, write_results
from latentzoo.benchmark.runner import RunOptions, run_cells
from latentzoo.benchmark.schema import Cell, Suite, SuiteError
from latentzoo.benchmark.suite import builtin_suites, load_suite
from latentzoo.datamodules import DATAMODULES
from latentzoo.metrics.extractors import MissingWeightsError, find_inception

__all__ = ["benchmark_command", "build_parser"]

USAGE_ERROR = 2


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="latentzoo benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", nargs="?", default=None, help="Built-in suite name or YAML file")
    parser.add_argument(
        "--out",
        type=str | None,
        default=None,
        help="Results folder (default: runs/benchmarks/<suite name>)",
    )
    parser.add_argument("--cells", type=str, default="*", help="Only the cells matching this glob")
    parser.add_argument("--list", action="store_true", help="List suites, or a suite's cells")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="Write every cell's config and OUT/cells.txt; train nothing",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="Train nothing: score the cells trained elsewhere and report",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="Let the cells download their data set where it can (MNIST, Fashion-MNIST, CIFAR-10)",
    )
    parser.add_argument("--accelerator", type=Literal["auto", "cpu", "gpu"], default="auto")
    parser.add_argument("--inception_weights", type=str | None, default=None)
    parser.add_argument(
        "--wandb_project",
        type=str | None,
        default=None,
        help="Log the table and the sample grids to this W&B project",
    )
    parser.add_argument(
        "--progress_bar",
        action="store_true",
        help="Keep Lightning's per-batch progress bar in the cells' fit.log",
    )
    return parser


def _fail(message: str) -> None:
    print(f"latentzoo benchmark: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def time_of(suite: Suite) -> str:
    """The suite's measured wall time and what it ran on, or its estimate, said as such."""
    if suite.measured:
        m = suite.measured
        when = f", {m['date']}" if m.get("date") else ""
        return f"measured {m['wall_time']} on {m['on']}{when}"
    return f"not measured yet (estimate: {suite.expected_time})"


def list_builtin() -> None:
    for name, path in sorted(builtin_suites().items()):
        suite = load_suite(str(path))
        print(f"{name:<14} {len(suite.cells):>4} cells  {time_of(suite)}")
        print(f"{'':<14} {suite.description}")


def write_configs(suite: Suite, cells: list[Cell], out: Path, progress_bar: bool) -> None:
    """Every cell's ``config.yaml``; warns where a trained cell's config changed."""
    for cell in cells:
        files = CellFiles(cell, out)
        if files.write_config(progress_bar) and files.last.is_file():
            print(
                f"latentzoo benchmark: warning: {files.config} changed since {cell.name} was "
                f"trained; delete {files.dir} to train it again",
                file=sys.stderr,
            )


def fit_command(files: CellFiles) -> str:
    return f"latentzoo fit --config {files.config}"


def list_cells(suite: Suite, cells: list[Cell], out: Path) -> None:
    print(f"{suite.name}: {len(cells)} cells, {time_of(suite)}; out {out}")
    for cell in cells:
        print(f"  {cell.name:<40} {CellFiles(cell, out).status(suite.samplers)}")


def prepare(spec: str, cells: list[Cell], out: Path) -> None:
    lines = [str(CellFiles(c, out).config) for c in cells]
    (out / "cells.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} cell configs; their paths, one a line, in {out / 'cells.txt'}")
    print(
        "run each as: latentzoo fit --config <line>  (a SLURM array: docs/benchmarks.md), "
        "then: latentzoo benchmark <suite> --collect --out " + str(out)
    )


def assemble(
    suite: Suite, out: Path, wandb_project: str | None
) -> tuple[dict[str, str], list[str]]:
    """Write the results and the report from what is on disk; (failed cells, missing cells)."""
    failed, missing = {}, []
    for cell in suite.cells:
        files = CellFiles(cell, out)
        status = files.status(suite.samplers)
        if status == "failed":
            info = read_json(files.failed) or {}
            failed[cell.name] = f"exit status {info.get('exit_code')}, see {files.log}"
        elif status != "scored":
            missing.append(f"{cell.name} ({status}): {fit_command(files)}")
    rows = collect_rows(suite, out)
    write_results(suite, rows, out, sorted(failed))
    figures = Figures(rows, out)
    figures.plots = grid_plots(suite, rows, out)
    write_report(suite, rows, figures, out, failed, missing)
    project = wandb_project or (suite.wandb or {}).get("project")
    if project:
        folder = log_wandb(suite, rows, figures, out, project, (suite.wandb or {}).get("entity"))
        print(f"W&B run: {folder}")
    return failed, missing


def allow_download(suite: Suite) -> None:
    """Every cell's data set downloads what it misses, where its class can (``download``)."""
    for cell in suite.cells:
        data = cell.fit["data"]
        cls = DATAMODULES.resolve(data["class_path"])
        if "download" in inspect.signature(cls).parameters:
            data["init_args"]["download"] = True


def benchmark_command(argv: Sequence[str]) -> None:
    """``latentzoo benchmark ...``; see the module docstring."""
    args = build_parser().parse_args(list(argv))
    if args.suite is None:
        if args.list:
            return list_builtin()
        _fail(f"give a SUITE: a YAML file or one of {', '.join(sorted(builtin_suites()))}")
    try:
        suite = load_suite(args.suite)
    except SuiteError as err:
        _fail(f"{args.suite}: {err}")
    out = Path(args.out or f"runs/benchmarks/{suite.name}")
    if args.download:
        allow_download(suite)
    cells = [c for c in suite.cells if fnmatch.fnmatchcase(c.name, args.cells)]
    if not cells:
        _fail(f"--cells {args.cells!r} matches none of {', '.join(c.name for c in suite.cells)}")
    if args.list:  # reads only: allowed while a run works there
        return list_cells(suite, cells, out)
    try:
        with hold(out):
            _run(args, suite, cells, out)
    except FolderLockedError as err:
        _fail(str(err))


def _run(args: Namespace, suite: Suite, cells: list[Cell], out: Path) -> None:
    """Everything that writes into ``out``, with its lock held."""
    write_configs(suite, cells, out, args.progress_bar)
    if args.prepare:
        return prepare(args.suite, cells, out)
    if any("inception" in c.metrics.extractors for c in cells):
        try:  # before hours of training, not after
            find_inception(args.inception_weights)
        except MissingWeightsError as err:
            _fail(str(err))
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # the scoring Trainers' info
    options = RunOptions(args.accelerator, args.collect, args.progress_bar, args.inception_weights)
    try:
        outcomes = run_cells(suite, cells, out, options)
    except KeyboardInterrupt:
        print("\nlatentzoo benchmark: interrupted; the same command resumes", file=sys.stderr)
        raise SystemExit(130) from None
    failed, missing = assemble(suite, out, args.wandb_project)
    print(
        f"\nlatentzoo benchmark {suite.name}: report {out / 'report.html'}, {out / 'report.md'}; "
        f"table {out / 'results.csv'}"
    )
    if missing:
        print(f"{len(missing)} cells not trained or scored yet; train each with:")
        print("\n".join(f"  {m}" for m in missing))
    if any(o.action == "failed" for o in outcomes) or failed:
        print(f"{len(failed)} cells failed: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)

"""The report of a suite: ``report.md`` (table, pictures as links under ``OUT/figures/``),
``report.html`` (the same, self-contained: pictures embedded as base64), the line plots of a grid,
and, when asked, one W&B run with the table and the sample grids."""

from __future__ import annotations

import base64
import html
import shutil
from pathlib import Path
from typing import Any

from latentzoo.benchmark.cellfiles import CellFiles
from latentzoo.benchmark.results import (
    NOT_APPLICABLE,
    Row,
    metric_names,
    results_header,
)
from latentzoo.benchmark.schema import Suite
from latentzoo.evaluation.results import split_column
from latentzoo.metrics.registry import key_info

__all__ = ["Figures", "log_wandb", "write_report"]

ARROW = {"lower": " ↓", "higher": " ↑", None: ""}


class Figures:
    """The pictures of each row copied to ``OUT/figures/`` (those of the row's first seed)."""

    def __init__(self, rows: list[Row], out: Path) -> None:
        self.samples: dict[str, Path] = {}
        self.holes: dict[str, Path] = {}
        folder = out / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        for stale in [*folder.glob("*_samples.png"), *folder.glob("*_holes.png"),
                      *folder.glob("plot_*.png")]:  # fmt: skip
            stale.unlink()  # a picture of a cell no longer in the table must not stay
        for row in rows:
            if not row.cells:
                continue
            files = CellFiles(row.cells[0], out)
            if files.samples_png(row.sampler).is_file():
                self.samples[row.label] = folder / f"{row.label}_samples.png"
                shutil.copyfile(files.samples_png(row.sampler), self.samples[row.label])
            holes_key = "__".join(p for p in (row.model, row.point) if p)
            if files.holes_png.is_file() and holes_key not in self.holes:
                self.holes[holes_key] = folder / f"{holes_key}_holes.png"
                shutil.copyfile(files.holes_png, self.holes[holes_key])
        self.plots: list[Path] = []


def _extractors(suite: Suite) -> list[str]:  # every cell's, in order
    return list(dict.fromkeys(e for c in suite.cells for e in c.metrics.extractors))


def _headline(suite: Suite, rows: list[Row], headline: bool = True) -> list[str]:
    """The table's columns, in the registry's order: the keys with a direction (lower or higher
    is better) and the plotted ones; with ``headline=False`` every other declared key (a
    diagnostic, a plug-in's number without a direction), shown in a second table."""
    names, extractors = metric_names(rows), _extractors(suite)
    keyed = {n: split_column(n, extractors)[0] for n in names}
    declared = key_info()
    shown = [
        k for k, info in declared.items() if (info.better is not None or info.plotted) == headline
    ]
    return [n for key in shown for n in names if keyed[n] == key]


def _header(suite: Suite, column: str) -> str:
    """A column's short name in words: ``FID ↓ (domain)``."""
    key, extractor = split_column(column, _extractors(suite))
    info = key_info().get(key)
    if info is None:
        return column
    text = (info.label or key) + ARROW[info.better]
    return f"{text} ({extractor})" if extractor else text


def column_legend(suite: Suite, columns: list[str]) -> list[str]:
    """One line per column: its words, features, sample counts and direction."""
    spec = suite.metrics
    lines = []
    for column in columns:
        key, extractor = split_column(column, _extractors(suite))
        info = key_info().get(key)
        if info is None:
            continue
        what = f"**{_header(suite, column)}**: {info.label or key}"
        if extractor:
            what += (
                f", on {extractor} features of {spec.num_samples:,} samples against "
                f"{spec.num_real:,} images of the {spec.split} split"
            )
        if info.better:
            what += f"; {info.better} is better"
        lines.append(f"- {what} (`{column}` in results.csv).")
    return lines


def _cell(stats: tuple[float | None, float | None], mark: str = "", na: bool = False) -> str:
    mean, std = stats
    if mean is None:
        return NOT_APPLICABLE if na else "—"
    text = f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"
    return f"≈ {text}" if mark == "tie" else text


SPREAD_LEGEND = (
    "≈: a mean within one standard deviation over seeds (the larger of the two rows') of the "
    "best mean of its column among the rows of its grid point, for the columns whose direction "
    "is known: a difference from the best that the seeds do not resolve. `real data` is the "
    "floor: the training split against the reference split, at the same N."
)


def _marks(suite: Suite, rows: list[Row], column: str) -> list[str]:
    """ "best", "tie" or "" per row, for one column, among the model rows of each grid point."""
    key = key_info().get(split_column(column, _extractors(suite))[0])
    marks = [""] * len(rows)
    if key is None or key.better is None:
        return marks
    sign = 1.0 if key.better == "lower" else -1.0
    for point in dict.fromkeys(r.point for r in rows):
        idx = [
            i
            for i, r in enumerate(rows)
            if r.point == point and not r.floor and r.stats.get(column, (None, None))[0] is not None
        ]
        if len(idx) < 2:
            continue
        best = min(idx, key=lambda i: sign * rows[i].stats[column][0])  # type: ignore[operator]
        best_mean, best_std = rows[best].stats[column]
        marks[best] = "best"
        for i in idx:
            mean, std = rows[i].stats[column]
            spread = max(std or 0.0, best_std or 0.0)
            if i != best and spread > 0 and abs(mean - best_mean) <= spread:  # type: ignore[operator]
                marks[i] = "tie"
    return marks


def _table(
    suite: Suite, rows: list[Row], headline: bool = True
) -> tuple[list[str], list[str], list[list[str]]]:
    """The columns (results keys), the header in words and the body of one table."""
    cols = _headline(suite, rows, headline)
    rows = [r for r in rows if any(r.stats.get(c, (None, None))[0] is not None for c in cols)]
    keys = [k for k in suite.grid_keys if any(k in r.grid for r in rows)]  # none all-dash
    head = ["model", *(_short_key(k) for k in keys), "sampler", "seeds"]
    head += [_header(suite, c) for c in cols]
    marks = {c: _marks(suite, rows, c) for c in cols}
    body = [
        [
            r.model,
            *(str(r.grid.get(k, "—")) for k in keys),
            r.sampler,
            str(r.n_seeds),
            *(
                _cell(r.stats.get(c, (None, None)), marks[c][i], c in r.not_applicable)
                for c in cols
            ),
        ]
        for i, r in enumerate(rows)
    ]
    return cols, head, body


def _md_row(cells: list[str]) -> str:
    """A markdown table row; a ``|`` inside a cell (``mean |off-diagonal cov.|``) escaped."""
    return "| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |"


def _short_key(key: str) -> str:
    """A grid key as a column name: ``data.init_args.latent_dim`` -> ``data latent_dim``."""
    head, tail = key.split(".", 1)[0], key.rsplit(".", 1)[-1]
    return f"{head} {tail}" if head != tail else key


def write_report(
    suite: Suite,
    rows: list[Row],
    figures: Figures,
    out: Path,
    failed: dict[str, str],
    missing: list[str],
) -> None:
    """``report.md`` and ``report.html``; paths relative to ``out`` (no machine's path)."""
    cols, head, body = _table(suite, rows)
    other_cols, other_head, other_body = _table(suite, rows, headline=False)
    meta = results_header(suite, rows, out)
    rel = lambda p: p.relative_to(out).as_posix()  # noqa: E731
    prefix = f"{out}/"
    failed = {c: why.replace(prefix, "") for c, why in failed.items()}
    missing = [m.replace(prefix, "") for m in missing]
    legend = column_legend(suite, cols)
    other = []
    if other_body:
        other = [
            "## Other numbers",
            "",
            "The declared numbers without a direction (diagnostics, a plug-in's own scale).",
            "",
            _md_row(other_head),
            "|" + "---|" * len(other_head),
            *(_md_row(b) for b in other_body),
            "",
            *column_legend(suite, other_cols),
            "",
        ]
    md = [
        f"# Benchmark `{suite.name}`",
        "",
        suite.description,
        "",
        *(f"- **{k}**: `{v}`" for k, v in meta.items() if k not in ("suite", "description")),
        "",
        _md_row(head),
        "|" + "---|" * len(head),
        *(_md_row(b) for b in body),
        "",
        SPREAD_LEGEND,
        "",
        *legend,
        "",
        "Every metric, with its std over seeds, is in `results.csv` / `results.json`; paths "
        "below are relative to this report's folder.",
        "",
        *other,
    ]
    if suite.recipes:
        md += ["## Recipes", "", *(f"- **{m}**: {r}" for m, r in suite.recipes.items()), ""]
    md += ["## Samples", "", *(f"![{k}]({rel(p)}) `{k}`" for k, p in figures.samples.items()), ""]
    md += ["## Holes", "", *(f"![{k}]({rel(p)}) `{k}`" for k, p in figures.holes.items()), ""]
    if figures.plots:
        md += ["## Against the grid", "", *(f"![{p.stem}]({rel(p)})" for p in figures.plots), ""]
    md += _problems(failed, missing, lambda s: f"`{s}`")
    (out / "report.md").write_text("\n".join(md))
    tables = [(head, body)] + ([(other_head, other_body)] if other_body else [])
    (out / "report.html").write_text(_html(suite, tables, figures, meta, failed, missing))


def _problems(failed: dict[str, str], missing: list[str], code: Any) -> list[str]:
    lines = []
    if failed:
        lines += ["## Failed cells", "", *(f"- {code(c)}: {why}" for c, why in failed.items()), ""]
    if missing:
        lines += ["## Missing cells", "", *(f"- {code(c)}" for c in missing), ""]
    return lines


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _html(
    suite: Suite,
    tables: list[tuple[list[str], list[list[str]]]],
    figures: Figures,
    meta: dict[str, Any],
    failed: dict[str, str],
    missing: list[str],
) -> str:
    e = html.escape

    def table(head: list[str], body: list[list[str]]) -> str:
        rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in b) + "</tr>" for b in body)
        return f"<table><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{rows}</table>"

    info = "".join(
        f"<li><b>{e(k)}</b>: <code>{e(str(v))}</code></li>"
        for k, v in meta.items()
        if k not in ("suite", "description")
    )
    parts = [
        f"<h1>Benchmark {e(suite.name)}</h1>",
        f"<p>{e(suite.description)}</p>",
        f"<ul>{info}</ul>",
        table(*tables[0]),
        f"<p>{e(SPREAD_LEGEND)}</p>",
        *(f"<h2>Other numbers</h2>{table(*t)}" for t in tables[1:]),
        "<h2>Samples</h2><div class='row'>",
        *(_img(p, k) for k, p in figures.samples.items()),
        "</div>",
        "<h2>Holes</h2><div class='row'>",
        *(_img(p, k) for k, p in figures.holes.items()),
        "</div>",
    ]
    if figures.plots:
        parts += [
            "<h2>Against the grid</h2><div class='row'>",
            *(_img(p, p.stem) for p in figures.plots),
            "</div>",
        ]
    problems = _problems(failed, missing, lambda s: f"<code>{e(s)}</code>")
    parts += [
        f"<h2>{e(p[3:])}</h2>" if p.startswith("## ") else f"<p>{p[2:]}</p>" for p in problems if p
    ]
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
        ".row{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}"
        "figcaption{font-size:11px;max-width:260px;overflow-wrap:anywhere}"
        "img{max-width:260px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(suite.name)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def log_wandb(
    suite: Suite,
    rows: list[Row],
    figures: Figures,
    out: Path,
    project: str,
    entity: str | None = None,
) -> str:
    """One W&B run: the results table and every sample grid; returns the run's folder."""
    import wandb

    names = metric_names(rows)
    columns: list[str | int] = ["model", *suite.grid_keys, "sampler", "n_seeds"]
    columns += [f"{n}_{s}" for n in names for s in ("mean", "std")]
    data = [
        [
            r.model,
            *(str(r.grid.get(k, "—")) for k in suite.grid_keys),
            r.sampler,
            r.n_seeds,
            *(v for n in names for v in r.stats.get(n, (None, None))),
        ]
        for r in rows
    ]
    run = wandb.init(
        project=project,
        entity=entity,
        name=f"benchmark-{suite.name}",
        dir=str(out),
        config=results_header(suite, rows, out),
        job_type="benchmark",
    )
    images = {f"samples/{k}": wandb.Image(str(p), caption=k) for k, p in figures.samples.items()}
    images |= {f"holes/{k}": wandb.Image(str(p), caption=k) for k, p in figures.holes.items()}
    run.log({"results": wandb.Table(columns=columns, data=data), **images})
    folder = str(run.dir)
    run.finish()
    return folder

"""The report's pictures of a grid: each headline metric against each numeric grid key.

One line per model and setting of the other grid keys, with error bars of one standard deviation
over the seeds, the axes named in words (the metric's declared label, its extractor and which
direction is better; the grid key as "latent dimensions of the model, m"). Where another numeric
key moves with the plotted one (the latent-dim suite's m = n, 2n, 4n), lines follow the ratio
(``m = 2n``) rather than a raw value, so no line joins points of different ratios. The active
dimensions get the references they are read against: y = n against the data's dimension, y = m
against the model's (every dimension open) and, dotted along a line of fixed ratio, its other
dimension (the data's n on the m axis, the model's m on the n axis).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentzoo.benchmark.results import Row, metric_names
from latentzoo.benchmark.schema import Suite
from latentzoo.evaluation.results import split_column
from latentzoo.metrics.registry import MetricKey, key_info

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["grid_figures", "grid_plots", "key_words", "metric_words"]

WORDS = {
    "model.init_args.latent_dim": "latent dimensions of the model, m",
    "data.init_args.latent_dim": "true latent dimension of the data, n",
    "trainer.max_epochs": "training epochs",
}
SYMBOL = {"model.init_args.latent_dim": "m", "data.init_args.latent_dim": "n"}


def key_words(key: str) -> str:
    """A grid key in words: ``data.init_args.latent_dim`` -> its label."""
    if key in WORDS:
        return WORDS[key]
    head, tail = key.split(".", 1)[0], key.rsplit(".", 1)[-1]
    return f"{tail.replace('_', ' ')} ({head})" if head != tail else key


def metric_words(column: str, declared: MetricKey | None, extractor: str | None) -> str:
    """A column in words: its label, extractor and the direction that is better."""
    if declared is None:
        return column
    text = declared.label or declared.name
    if extractor is not None:
        text += f", {extractor} features"
    if declared.better is not None:
        text += f" ({declared.better} is better)"
    return text


def _value(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _line_label(row: Row, key: str, numeric: list[str]) -> tuple[str, float | None]:
    """The line a row belongs to and, for a ratio line, the ratio other / x."""
    x = _value(row.grid[key])
    parts, ratio = [], None
    for k, v in row.grid.items():
        if k == key or k.startswith(("trainer.", "metrics.")):
            continue
        if k in numeric and x and _value(v) is not None and k in SYMBOL and key in SYMBOL:
            ratio = _value(v) / x  # type: ignore[operator]
            factor = f"{ratio:g}" if ratio != 1 else ""
            parts.append(f"{SYMBOL[k]} = {factor}{SYMBOL[key]}")
        else:
            parts.append(f"{SYMBOL.get(k, k.rsplit('.', 1)[-1])} = {v}" if k in SYMBOL else str(v))
    return row.model + (f" ({', '.join(parts)})" if parts else ""), ratio


def grid_plots(suite: Suite, rows: list[Row], out: Path) -> list[Path]:
    """Every picture of :func:`grid_figures`, as ``OUT/figures/plot_<column>_vs_<key>.png``."""
    import matplotlib.pyplot as plt

    paths = []
    for name, fig in grid_figures(suite, rows):
        path = out / "figures" / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def grid_figures(suite: Suite, rows: list[Row]) -> list[tuple[str, Figure]]:
    """For each numeric grid key, every plotted metric against it (first sampler only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in rows if r.sampler == suite.samplers[0] and r.cells]
    numeric = [
        k
        for k in suite.grid_keys
        if len({r.grid[k] for r in rows if k in r.grid}) > 1
        and all(_value(r.grid[k]) is not None for r in rows if k in r.grid)
    ]
    declared = key_info()
    extractors = list(dict.fromkeys(e for c in suite.cells for e in c.metrics.extractors))
    columns = []
    for n in metric_names(rows):
        key, extractor = split_column(n, extractors)
        if (found := declared.get(key)) is not None and found.plotted:
            columns.append((n, key, extractor, found))
    figures = []
    for x_key in numeric:
        for column, key, extractor, info in columns:
            lines: dict[str, list[tuple[float, float, float]]] = {}
            ratios: dict[str, float | None] = {}
            for r in rows:
                mean, std = r.stats.get(column, (None, None))
                if x_key not in r.grid or mean is None:
                    continue
                label, ratio = _line_label(r, x_key, numeric)
                ratios[label] = ratio
                lines.setdefault(label, []).append((float(r.grid[x_key]), mean, std or 0.0))
            if not lines:
                continue
            fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
            xs_all = [x for pts in lines.values() for x, _, _ in pts]
            log_x = min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 8
            markers = "osD^v<>ph*"
            references: list[str] = []  # lines that drew their other dimension
            for i, (label, points) in enumerate(lines.items()):
                points.sort()
                shift = 1 + 0.03 * (i - (len(lines) - 1) / 2)  # no point hides another
                xs = [x * shift if log_x else x + 0.05 * (i - len(lines) / 2) for x, _, _ in points]
                drawn = ax.errorbar(xs, [p[1] for p in points], yerr=[p[2] for p in points],
                                    marker=markers[i % len(markers)], capsize=3, label=label,
                                    linewidth=1.2, markersize=5)  # fmt: skip
                ratio = ratios[label]
                if key == "active_dims" and ratio and ratio != 1 and x_key in SYMBOL:
                    # the line's other dimension (m on the n axis, n on the m axis) at each x
                    ref = [x * ratio for x, _, _ in points]
                    other = "m" if SYMBOL[x_key] == "n" else "n"
                    dotted = f"dotted: {other} of the line" if not references else None
                    references.append(label)
                    ax.plot(xs, ref, ":", color=drawn[0].get_color(), linewidth=1, label=dotted)
            if key == "active_dims" and x_key in SYMBOL:
                lo, hi = min(xs_all), max(xs_all)
                lo, hi = (lo * 0.9, hi * 1.1) if log_x else (lo, hi)
                grid = np.geomspace(lo, hi, 50) if log_x else np.array([lo, hi])  # straight on log
                symbol = SYMBOL[x_key]
                ax.plot(grid, grid, "--", color="0.4", linewidth=1, label=f"y = {symbol}")
            if log_x:
                ax.set_xscale("log", base=2)
                ax.set_xticks(sorted(set(xs_all)), [f"{v:g}" for v in sorted(set(xs_all))])
            y_words = metric_words(column, info, extractor)
            ax.set_xlabel(key_words(x_key))
            ax.set_ylabel(y_words)
            ax.set_title(f"{suite.name}: {info.label or key} against {key_words(x_key)}",
                         fontsize=10)  # fmt: skip
            ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
            ax.grid(alpha=0.3)
            figures.append((f"plot_{column}_vs_{x_key.replace('.', '-')}", fig))
    return figures

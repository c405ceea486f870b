"""Every kind of picture latentzoo draws is titled, with axes in words and a legend or colour bar:
the holes picture, a sample grid, a vector scatter, a metric against a grid key, the mask or
activity trajectory."""

from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import pytest
import torch
from benchmark.tiny import TINY_SUITE

from latentzoo.benchmark.cellfiles import CellFiles, write_json
from latentzoo.benchmark.plots import grid_figures
from latentzoo.benchmark.results import collect_rows
from latentzoo.benchmark.suite import parse_suite
from latentzoo.callbacks.active_dims import trajectory_plot
from latentzoo.callbacks.holes import holes_plot
from latentzoo.evaluation.pictures import sample_grid_plot, vector_scatter_plot


def words(text: str) -> bool:
    """A label in words: not empty, not a dotted config key."""
    return bool(text.strip()) and "init_args" not in text and "_" not in text.split("(")[0]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("d", [2, 6])
def test_holes_picture(d: int) -> None:
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(800, d, generator=gen) * 0.5
    prior = torch.randn(2000, d, generator=gen)
    holes = prior.norm(dim=1) > 1.5
    fig = holes_plot(codes, prior, holes, title="Holes of VAE: 40% of the prior in holes")
    (ax,) = fig.axes
    assert ax.get_title().startswith("Holes of VAE")
    assert words(ax.get_xlabel()) and words(ax.get_ylabel())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("in holes" in t for t in labels) and any("covered" in t for t in labels)
    assert any("codes" in t for t in labels)
    contour_labels = [t.get_text() for t in ax.texts]
    assert contour_labels and all(t.endswith("of p") for t in contour_labels)
    if d > 2:
        assert "principal direction" in ax.get_xlabel() and "%" in ax.get_xlabel()


def test_sample_grid_and_vector_scatter() -> None:
    grid = sample_grid_plot(torch.rand(64, 1, 8, 8), "VAE: samples from the gmm sampler")
    assert grid.axes[0].get_title() == "VAE: samples from the gmm sampler"
    scatter = vector_scatter_plot(torch.randn(300, 5), torch.randn(400, 5), "WAEGP, prior")
    (ax,) = scatter.axes
    assert ax.get_title() == "WAEGP, prior" and words(ax.get_xlabel()) and words(ax.get_ylabel())
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"test data", "samples"}


def test_trajectory_heat_maps() -> None:
    for masked in (True, False):
        fig = trajectory_plot(torch.rand(5, 8), masked)
        ax, bar = fig.axes
        assert ax.get_title() and words(ax.get_xlabel()) and words(ax.get_ylabel())
        assert bar.get_ylabel()  # the colour bar says what the colour is


def test_metric_against_the_grid(tmp_path) -> None:
    grid = [{"name": f"n{n}_m{m}", "data.init_args.latent_dim": n,
             "model.init_args.latent_dim": m} for n in (1, 2) for m in (n, 2 * n)]  # fmt: skip
    raw = {**copy.deepcopy(TINY_SUITE), "grid": grid, "samplers": ["prior"], "seeds": [0, 1]}
    suite = parse_suite(raw)
    for cell in suite.cells:
        m = cell.fit["model"]["init_args"]["latent_dim"]
        files = CellFiles(cell, tmp_path)
        write_json(files.trained, {"wall_s": 1.0})
        write_json(files.scores("prior"), {
            "extractors": ["pixels"], "num_samples": 200, "num_real": 200,
            "metrics": {"fid_pixels": 10.0 / m + cell.seed, "active_dims": float(m)}})  # fmt: skip
    figures = dict(grid_figures(suite, collect_rows(suite, tmp_path)))
    active = figures["plot_active_dims_vs_data-init_args-latent_dim"]
    (ax,) = active.axes
    assert ax.get_xlabel() == "true latent dimension of the data, n"
    assert "active latent dimensions" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "y = n" in labels  # the reference the active dimensions are read against
    assert any("m = 2n" in t for t in labels)  # lines follow the ratio m / n, not a raw m
    assert "dotted: m of the line" in labels  # the m = 2n line's m, drawn once in the legend
    dotted = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert len(dotted) == len(TINY_SUITE["models"])  # m = 2n lines only: m = n is y = n
    assert all(list(ln.get_ydata()) == [2.0, 4.0] for ln in dotted)  # m = 2n at n = 1, 2
    (dashed,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    x_ref, y_ref = dashed.get_data()
    assert list(x_ref) == list(y_ref)  # y = n, at every point drawn
    fid = figures["plot_fid_pixels_vs_model-init_args-latent_dim"]
    (ax,) = fid.axes
    assert ax.get_ylabel() == "FID, pixels features (lower is better)"
    assert any(len(c.lines) for c in ax.containers)  # error bars: the seeds' spread
    assert ax.get_title()


def test_titles_name_the_prior_where_it_is_not_the_standard_normal() -> None:
    from latentzoo.zoo import VAE, FlowPrior

    assert VAE(data_shape=(16,)).display_name == "VAE"
    flow = VAE(data_shape=(16,), prior=FlowPrior(num_layers=2))
    assert flow.display_name == "VAE with a FlowPrior prior"

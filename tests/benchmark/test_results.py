"""The table: mean and std over seeds from the cells' score files; the report is self-contained;
W&B gets one run with the table."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import re

import torch
from benchmark.tiny import TINY_SUITE

from latentzoo.benchmark.cellfiles import CellFiles, write_json
from latentzoo.benchmark.command import assemble
from latentzoo.benchmark.floor import floor_path
from latentzoo.benchmark.results import extractor_weights
from latentzoo.benchmark.suite import parse_suite
from latentzoo.callbacks.log_media import save_png
from latentzoo.metrics.extractors import weights_id

# (model, sampler) -> fid_pixels of seeds 0, 1, 2 (None: that seed's value was not finite)
FID = {
    ("VAE", "prior"): [1.0, 2.0, 6.0],
    ("VAE", "gmm"): [4.0, 4.0, 4.0],
    ("WAE", "prior"): [3.0, None, 5.0],
    ("WAE", "gmm"): [7.5, 8.5, 9.5],
}


def scored_suite(tmp_path, missing: str | None = None, bound: bool = False):
    """The tiny suite over three seeds with hand-written scores (and pictures) in every cell;
    with ``bound``, the class-distance bound too: 1.5 under the prior, NaN (null) under gmm."""
    suite = parse_suite({**copy.deepcopy(TINY_SUITE), "seeds": [0, 1, 2]})
    for cell in suite.cells:
        if cell.name == missing:
            continue
        files = CellFiles(cell, tmp_path)
        write_json(files.trained, {"wall_s": 1.0})
        for sampler in suite.samplers:
            metrics = {"fid_pixels": FID[cell.model, sampler][cell.seed], "active_dims": 2.0}
            if bound:
                metrics["distance_bound"] = 1.5 if sampler == "prior" else None
                metrics["kl_agg_prior"] = None  # NaN that is a failure, not "does not apply"
            write_json(files.scores(sampler), {
                "extractors": ["pixels"], "num_samples": 200, "num_real": 200,
                "metrics": metrics})  # fmt: skip
            save_png(torch.rand(3, 8, 8), files.samples_png(sampler))
        save_png(torch.rand(3, 8, 8), files.holes_png)
    return suite


def read_csv(path):
    lines = path.read_text().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    return comments, {(r["model"], r["sampler"]): r for r in rows}


def test_mean_and_std_over_seeds(tmp_path) -> None:
    suite = scored_suite(tmp_path)
    failed, missing = assemble(suite, tmp_path, None)
    assert failed == {} and missing == []
    comments, rows = read_csv(tmp_path / "results.csv")
    assert "# suite: tiny" in comments
    assert "# extractors: ['pixels']" in comments
    assert "# num_samples: 200" in comments and "# seeds: [0, 1, 2]" in comments
    assert any(c.startswith("# budget: {'max_epochs': 2") for c in comments)
    resize = [c for c in comments if c.startswith("# extractor_resize: ")]
    assert len(resize) == 1 and "'pixels': \"none (" in resize[0]
    assert len(rows) == 4
    prior = rows["VAE", "prior"]  # 1, 2, 6: mean 3, sample std sqrt(7)
    assert float(prior["fid_pixels_mean"]) == 3.0
    assert math.isclose(float(prior["fid_pixels_std"]), math.sqrt(7), rel_tol=1e-5)
    assert prior["n_seeds"] == "3"
    assert float(rows["VAE", "gmm"]["fid_pixels_std"]) == 0.0
    wae = rows["WAE", "prior"]  # 3, null, 5: the finite two
    assert float(wae["fid_pixels_mean"]) == 4.0
    assert math.isclose(float(wae["fid_pixels_std"]), math.sqrt(2), rel_tol=1e-5)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["suite"] == "tiny" and data["num_real"] == 200 and data["seeds"] == [0, 1, 2]
    by_row = {(r["model"], r["sampler"]): r for r in data["rows"]}
    assert by_row["WAE", "gmm"]["metrics"]["fid_pixels"]["mean"] == 8.5
    assert by_row["WAE", "gmm"]["metrics"]["fid_pixels"]["std"] == 1.0
    assert by_row["WAE", "gmm"]["cells"] == ["WAE__seed0", "WAE__seed1", "WAE__seed2"]


def test_a_number_every_seed_reported_as_nan_reads_not_applicable(tmp_path) -> None:
    """The bound is NaN where the sampler is not N(0, I), which its key declares "does not
    apply": "n/a", not a missing "—"."""
    assemble(scored_suite(tmp_path, bound=True), tmp_path, None)
    _, rows = read_csv(tmp_path / "results.csv")
    assert rows["VAE", "gmm"]["distance_bound_mean"] == "n/a"
    assert rows["VAE", "gmm"]["distance_bound_std"] == ""
    assert float(rows["VAE", "prior"]["distance_bound_mean"]) == 1.5
    data = json.loads((tmp_path / "results.json").read_text())
    by_row = {(r["model"], r["sampler"]): r for r in data["rows"]}
    assert by_row["WAE", "gmm"]["metrics"]["distance_bound"]["mean"] == "n/a"
    assert by_row["WAE", "prior"]["metrics"]["distance_bound"]["mean"] == 1.5
    md = (tmp_path / "report.md").read_text()
    table = [
        [c.strip() for c in ln.strip("|").split("|")] for ln in md.splitlines() if ln[:2] == "| "
    ]
    head, gmm = table[0], next(r for r in table if r[:2] == ["VAE", "gmm"])
    bound = next(i for i, h in enumerate(head) if "bound" in h)
    kl = next(i for i, h in enumerate(head) if "KL(q" in h)
    assert gmm[bound] == "n/a" and gmm[kl] == "—"
    # a key whose NaN is not declared "does not apply" stays empty; one null seed is left out
    assert rows["VAE", "prior"]["kl_agg_prior_mean"] == ""
    assert float(rows["WAE", "prior"]["fid_pixels_mean"]) == 4.0


def test_weights_are_named_by_file_and_hash(tmp_path) -> None:
    """Two evaluators of one file name but different weights read differently in a header."""
    (tmp_path / "evaluators").mkdir()
    ckpt = tmp_path / "evaluators" / "FashionMNIST.ckpt"
    ckpt.write_bytes(b"weights one")
    first = weights_id(ckpt)
    ckpt.write_bytes(b"other weights")
    digest = hashlib.sha256(b"other weights").hexdigest()
    assert first != weights_id(ckpt) == f"FashionMNIST.ckpt sha256:{digest[:16]}"
    # cells that recorded no weights: the suite's evaluator file, said to be read at collection
    found = extractor_weights([], tmp_path, ["domain"])
    assert found == {"domain": [f"{weights_id(ckpt)} (the file at collection)"]}
    assert extractor_weights([], tmp_path, ["pixels"]) == {}


def test_one_seed_has_no_std_and_a_missing_cell_is_listed(tmp_path) -> None:
    suite = scored_suite(tmp_path, missing="VAE__seed1")
    suite.cells = [c for c in suite.cells if c.seed in (0, 1)]
    _, missing = assemble(suite, tmp_path, None)
    assert missing == [
        f"VAE__seed1 (new): latentzoo fit --config {tmp_path}/cells/VAE__seed1/config.yaml"
    ]
    _, rows = read_csv(tmp_path / "results.csv")
    assert rows["VAE", "prior"]["n_seeds"] == "1"
    assert float(rows["VAE", "prior"]["fid_pixels_mean"]) == 1.0
    assert rows["VAE", "prior"]["fid_pixels_std"] == ""
    assert "VAE__seed1" in (tmp_path / "report.md").read_text()


def test_report_is_self_contained(tmp_path) -> None:
    assemble(scored_suite(tmp_path), tmp_path, None)
    page = (tmp_path / "report.html").read_text()
    sources = re.findall(r"""src=["']([^"']*)""", page)
    assert len(sources) == 4 + 2  # a sample grid per row, a holes picture per model
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "href=" not in page
    for label in ("VAE__prior", "VAE__gmm", "WAE__prior", "WAE__gmm"):
        assert label in page
    md = (tmp_path / "report.md").read_text()
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (tmp_path / link).is_file()
    assert "| VAE | prior | 3 | 3 ± 2.6 | 2 ± 0 |" in md  # sqrt(7) = 2.65
    for key in ("num_samples", "reference_split", "seeds", "extractor_resize"):  # the protocol
        assert f"- **{key}**: `" in md and f"<b>{key}</b>" in page


def test_wandb_offline_run_holds_the_table(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    suite = scored_suite(tmp_path)
    assemble(suite, tmp_path, "latentzoo-tests")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))
    tables = list(runs[0].glob("files/media/table/results_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert table["columns"][:3] == ["model", "sampler", "n_seeds"]
    assert len(table["data"]) == 4
    assert len(list(runs[0].glob("files/media/images/samples/*.png"))) == 4


def test_grid_plots_each_metric_against_each_numeric_grid_key(tmp_path) -> None:
    grid = [{"model.init_args.latent_dim": m} for m in (1, 2, 4)]
    suite = parse_suite({**copy.deepcopy(TINY_SUITE), "grid": grid, "samplers": ["prior"]})
    for cell in suite.cells:
        m = cell.fit["model"]["init_args"]["latent_dim"]
        files = CellFiles(cell, tmp_path)
        write_json(files.trained, {"wall_s": 1.0})
        write_json(files.scores("prior"), {
            "extractors": ["pixels"], "num_samples": 200, "num_real": 200,
            "metrics": {"fid_pixels": 10.0 / m, "active_dims": float(m), "loss": 1.0}})  # fmt: skip
    assemble(suite, tmp_path, None)
    _, rows = read_csv(tmp_path / "results.csv")
    assert len(rows) == 2  # keyed by (model, sampler): the last grid point of each model
    lines = [line for line in (tmp_path / "results.csv").read_text().splitlines() if line[0] != "#"]
    assert lines[0].startswith("model,point,model.init_args.latent_dim,sampler,n_seeds,")
    assert lines[1].startswith("VAE,latent_dim1,1,prior,1,")
    plots = sorted(p.name for p in (tmp_path / "figures").glob("plot_*.png"))
    assert plots == [
        "plot_active_dims_vs_model-init_args-latent_dim.png",
        "plot_fid_pixels_vs_model-init_args-latent_dim.png",
    ]
    assert (
        "figures/plot_fid_pixels_vs_model-init_args-latent_dim.png"
        in (tmp_path / "report.md").read_text()
    )


def test_the_floor_row_comes_first_and_ties_with_the_best_are_marked(tmp_path) -> None:
    suite = scored_suite(tmp_path)
    cell = suite.cells[0]
    write_json(floor_path(tmp_path, cell), {"metrics": {"fid_pixels": 0.5, "kid_pixels": 0.0}})
    assemble(suite, tmp_path, None)
    lines = [ln for ln in (tmp_path / "results.csv").read_text().splitlines() if ln[:1] != "#"]
    first = next(csv.DictReader(lines))
    assert (first["model"], first["sampler"], first["n_seeds"]) == (
        "real data",
        "train vs test",
        "1",
    )
    assert float(first["fid_pixels_mean"]) == 0.5 and first["fid_pixels_std"] == ""
    md = (tmp_path / "report.md").read_text()
    # FID, lower is better: VAE prior (3 +- 2.6) is the best model row; VAE gmm (4 +- 0) lies
    # within its spread, WAE gmm (8.5 +- 1) does not; the floor is never a candidate.
    assert "| VAE | gmm | 3 | ≈ 4 ± 0 |" in md and "| WAE | gmm | 3 | 8.5 ± 1 |" in md
    assert "| real data | train vs test | 1 | 0.5 |" in md


def test_report_drops_grid_columns_no_scored_row_sets_and_shows_undirected_numbers(
    tmp_path,
) -> None:
    """A grid key only an unscored point sets (a partial run) makes no all-dash column; a number
    without a direction (KID's subset std) gets a table of its own rather than none; the
    extractors' conventions the cells recorded reach results.json."""
    grid = [
        {"name": "small", "model.init_args.latent_dim": 1},
        {"name": "long", "model.init_args.latent_dim": 2, "trainer.max_epochs": 3},
    ]
    suite = parse_suite({**copy.deepcopy(TINY_SUITE), "grid": grid, "samplers": ["prior"]})
    scored = [c for c in suite.cells if c.point == "small"]
    assert scored and len(scored) < len(suite.cells)
    for cell in scored:
        files = CellFiles(cell, tmp_path)
        write_json(files.trained, {"wall_s": 1.0})
        pixels = {"source": "/a/b", "convention": "raw"}
        write_json(files.scores("prior"), {
            "extractors": ["pixels"], "num_samples": 200, "num_real": 200,
            "metrics": {"fid_pixels": 2.0, "kid_std_pixels": 0.25, "offdiag_cov": 0.5},
            "protocol": {"extractors": {"pixels": pixels}}})  # fmt: skip
    assemble(suite, tmp_path, None)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["extractor_conventions"] == {"pixels": ["raw"]}  # the words, not the path
    md = (tmp_path / "report.md").read_text()
    headers = [ln for ln in md.splitlines() if ln.startswith("| model |")]
    assert len(headers) == 2  # the headline table and the other numbers
    assert all("model latent_dim" in h and "max_epochs" not in h for h in headers)
    assert "## Other numbers" in md and "KID std over subsets (pixels)" in headers[1]
    assert "| VAE | 1 | prior | 1 | 0.25 |" in md
    for table in re.findall(r"(?:^\|.*\n)+", md, flags=re.M):  # one cell count per table
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(counts) == 1, table


def test_a_pipe_in_a_label_does_not_split_a_markdown_cell() -> None:
    from latentzoo.benchmark.report import _md_row

    assert _md_row(["mean |x| of z", "1"]) == r"| mean \|x\| of z | 1 |"

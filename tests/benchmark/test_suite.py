"""Suites: the built-in ones expand as documented; a wrong suite is one line and exit status 2."""

from __future__ import annotations

import copy

import pytest
import yaml
from benchmark.tiny import TINY_SUITE, latentzoo

from latentzoo.benchmark import SuiteError, builtin_suites, load_suite
from latentzoo.benchmark.suite import parse_suite
from latentzoo.cli import main

# suite -> (cells, a cell that must be among them)
BUILTIN = {
    "fashion-cpu": (8 * 3, "TwoStageVAE__seed2"),
    "latent-dim": (2 * (8 + 2) * 3, "LMGAE__synth_n16_m64__seed2"),
    "dai-wipf": (3 * 4 * 3, "WAEGP__celeba__seed2"),
    "samplers": (2, "VAE__seed0"),
    "priors": (5 * 3, "Lipschitz__seed2"),
    "paper-recipes": (78, None),
    "lmgae-grid": (44, None),
}


def test_every_builtin_suite_is_tested() -> None:
    assert sorted(builtin_suites()) == sorted(BUILTIN)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_suite_expands(name: str) -> None:
    suite = load_suite(name)
    n_cells, example = BUILTIN[name]
    names = [c.name for c in suite.cells]
    assert len(names) == n_cells == len(set(names))
    assert example is None or example in names
    for cell in suite.cells:
        assert cell.fit["trainer"].get("max_epochs") or cell.fit["trainer"].get("max_steps")


def test_latent_dim_grid_sets_n_and_m_and_its_fashion_points_use_the_domain_extractor() -> None:
    cells = {c.name: c for c in load_suite("latent-dim").cells}
    synth = cells["LMGAE__synth_n8_m32__seed0"]
    assert synth.fit["data"]["init_args"]["latent_dim"] == 8
    assert synth.fit["model"]["init_args"]["latent_dim"] == 32
    assert synth.metrics.extractors == ("pixels",)
    fashion = cells["WAEGP__fashion_m32__seed0"]
    assert fashion.fit["data"]["class_path"].endswith("FashionMNIST")
    assert fashion.fit["data"]["init_args"] == {"batch_size": 128}  # Synthetic's own args dropped
    assert fashion.metrics.extractors == ("domain",)
    assert fashion.fit["trainer"]["max_epochs"] == 5


def test_cell_config_is_a_resumable_fit_config(tmp_path) -> None:
    cell = parse_suite(copy.deepcopy(TINY_SUITE)).cells[1]
    config = cell.config(tmp_path)
    assert cell.name == "WAE__seed0"
    assert config["seed_everything"] == 0
    assert config["model"]["class_path"] == "latentzoo.zoo.wae_gp.WAEGP"
    assert config["model"]["init_args"] == {"latent_dim": 2, "width": 4}
    assert config["trainer"]["enable_progress_bar"] is False
    assert config["trainer"]["logger"]["init_args"] == {
        "save_dir": str(tmp_path / "cells"),
        "name": "WAE__seed0",
        "version": 0,
    }


def _with(**changes):
    raw = copy.deepcopy(TINY_SUITE)
    for key, value in changes.items():
        *path, last = key.split("__")
        node = raw
        for part in path:
            node = node[part] if not part.isdigit() else node[int(part)]
        node[last] = value
    return raw


BAD = [
    (_with(colour="red"), "suite: unknown key 'colour'"),
    (_with(seeds=[]), "seeds: a non-empty list"),
    (_with(samplers=["prior", "vamp"]), "samplers: unknown sampler 'vamp'"),
    (_with(metrics__extractors=["clip"]), "metrics.extractors: unknown extractor 'clip'"),
    (_with(models__1__name="VAE"), "models[1].name: 'VAE' is used twice"),
    (_with(models__1__class_path="latentzoo.zoo.NoSuchModel"), "does not resolve to a class"),
    (_with(models__1__class_path="WAEGPX"), "no latentzoo model named 'WAEGPX'"),
    (_with(models__0__init_args={"widht": 3}), "VAE takes no argument 'widht'"),
    (_with(metrics__extractors=["inception"]), "'inception' needs images"),
    (_with(metrics__extractors=["domain"]), "Synthetic has no class labels"),
    (_with(trainer={"accelerator": "cpu"}), "trainer: give the budget"),
    (_with(metrics__class_radius=-1), "metrics.class_radius: an integer >= 0"),
    (_with(metrics__class_radius=50), "class_radius: measured with diversity"),
    (
        _with(grid=[{"model.init_args.latent_dim": 3}, {"model.init_args.latent_dim": 3}]),
        "grid[1]: label 'latent_dim3' is used twice",
    ),
    (_with(grid=[{"optimizer.lr": 3}]), "grid[0]: key 'optimizer.lr' must start with"),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_suite_is_one_line_and_status_2(raw, message, tmp_path, capsys) -> None:
    with pytest.raises(SuiteError) as err:
        parse_suite(raw)
    assert message in str(err.value)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as exit_:
        main(["benchmark", str(path), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and message in err_lines[0]
    assert not (tmp_path / "out").exists()


def test_domain_extractor_on_image_data_needs_the_evaluator() -> None:
    raw = _with(data={"class_path": "FashionMNIST"}, metrics__extractors=["domain"])
    with pytest.raises(SuiteError) as err:
        parse_suite(raw)
    assert "add 'evaluator: {max_epochs: 3}'" in str(err.value)
    parse_suite({**raw, "evaluator": {"max_epochs": 1}})  # and with it, it is fine


@pytest.mark.slow  # several benchmark processes, about 11 s
def test_cli_reports_a_bad_suite_in_one_line(write_suite, tmp_path) -> None:
    suite = write_suite(samplers=["prior", "vamp"])
    proc = latentzoo("benchmark", str(suite), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"latentzoo benchmark: {suite}: samplers: unknown sampler 'vamp'; allowed: prior, "
        "normal, gmm, two_stage"
    ]
    proc = latentzoo("benchmark", "no-such-suite", cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        "built-in suites: dai-wipf, fashion-cpu, latent-dim, lmgae-grid, paper-recipes, priors, "
        "samplers" in proc.stderr
    )


def test_download_makes_every_cell_config_download_its_data(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    main(["benchmark", "fashion-cpu", "--download", "--prepare", "--out", str(out)])
    configs = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("cells/*/config.yaml"))]
    assert len(configs) == len(load_suite("fashion-cpu").cells)
    assert all(c["data"]["init_args"]["download"] is True for c in configs)
    main(["benchmark", "fashion-cpu", "--prepare", "--out", str(tmp_path / "plain")])
    plain = yaml.safe_load(next((tmp_path / "plain").glob("cells/*/config.yaml")).read_text())
    assert "download" not in plain["data"]["init_args"]  # the local files, as before


def test_list_says_what_each_suite_took_and_on_what(capsys) -> None:
    main(["benchmark", "--list"])
    printed = capsys.readouterr().out
    for name in BUILTIN:
        (line,) = [ln for ln in printed.splitlines() if ln.startswith(f"{name} ")]
        assert "measured " in line or "not measured yet (estimate:" in line, line
        suite = load_suite(name)
        if suite.measured:
            assert f"measured {suite.measured['wall_time']} on {suite.measured['on']}" in line

"""Registry: names, duplicates, and plugins that arrive through the entry-point group."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest
from testutils import run_python

from latentzoo.zoo import VAE, create_model, get_model_class, list_models, registry


@pytest.fixture
def clean_registry(monkeypatch):
    with registry.MODELS.isolated(reload_plugins=True):
        yield registry
    sys.modules.pop("lz_plugin", None)  # each test installs its own version of the plugin
    importlib.invalidate_caches()


def write_plugin(root: Path, body: str, target: str = "lz_plugin:PluginVAE") -> Path:
    """An installed distribution, as pip leaves it: a package and a .dist-info with entry points."""
    (root / "lz_plugin").mkdir(parents=True)
    (root / "lz_plugin" / "__init__.py").write_text(textwrap.dedent(body))
    info = root / "lz_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lz-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[latentzoo.models]\nPluginVAE = {target}\n")
    return root


PLUGIN = """
    from latentzoo.zoo import VAE

    class PluginVAE(VAE):
        '''A VAE shipped by a third-party package.'''
"""


def test_builtin_models_are_listed_and_created_by_name() -> None:
    assert {"VAE", "BetaVAE"} <= set(list_models())
    assert list_models("Beta*") == ["BetaVAE"]
    model = create_model("VAE", data_shape=(6,), latent_dim=3)
    assert isinstance(model, VAE) and model.latent_dim == 3


def test_unknown_name_lists_what_exists() -> None:
    with pytest.raises(KeyError, match=r"no latentzoo model named 'Nope'.*BetaVAE"):
        get_model_class("Nope")


def test_duplicate_name_warns_and_replaces(clean_registry) -> None:
    class Other(VAE):
        pass

    with pytest.warns(UserWarning, match="'VAE' is registered twice"):
        clean_registry.register_model(Other, name="VAE")
    assert get_model_class("VAE") is Other


def test_plugin_registers_through_entry_point(clean_registry, tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(write_plugin(tmp_path, PLUGIN)))
    assert "PluginVAE" in list_models()
    model = create_model("PluginVAE", data_shape=(5,), latent_dim=2)
    assert isinstance(model, VAE) and type(model).__module__ == "lz_plugin"


def test_broken_plugin_warns_and_the_zoo_survives(clean_registry, tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(write_plugin(tmp_path, "raise ImportError('boom')\n")))
    with pytest.warns(UserWarning, match=r"plugin 'PluginVAE'.*failed to load.*boom"):
        names = list_models()
    assert "VAE" in names and "PluginVAE" not in names


@pytest.mark.slow  # an install-free plugin fit, about 18 s
def test_plugin_model_trains_from_the_cli(tmp_path) -> None:
    root = write_plugin(tmp_path / "site", PLUGIN)
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    cmd = ["-m", "latentzoo"]
    listed = run_python(*cmd, "models", env=env, check=True)
    assert "PluginVAE" in listed.stdout and "third-party" in listed.stdout
    fit = run_python(
        *cmd, "fit", "--model", "PluginVAE", "--data.num_train", "300", "--data.val_size", "60",
        "--trainer.fast_dev_run", "1", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-2000:]
    printed = run_python(*cmd, "fit", "--model", "PluginVAE", "--print_config", env=env,
                         check=True)  # fmt: skip
    assert "class_path: lz_plugin.PluginVAE" in printed.stdout

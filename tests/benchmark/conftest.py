"""``write_suite``: the tiny suite of :mod:`benchmark.tiny`, changed and written as YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from benchmark.tiny import TINY_SUITE


@pytest.fixture
def write_suite(tmp_path: Path):
    """``write_suite(**changes)``: the tiny suite with top-level keys replaced, as a YAML file."""

    def write(**changes: Any) -> Path:
        path = tmp_path / "suite.yaml"
        path.write_text(yaml.safe_dump({**TINY_SUITE, **changes}, sort_keys=False))
        return path

    return write

"""Fixtures for the callback tests."""

from __future__ import annotations

import pytest
from testutils import LabelledNoise


@pytest.fixture
def tiny_images() -> LabelledNoise:
    return LabelledNoise()

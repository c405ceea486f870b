"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest
import torch

# Lightning's bars and tips are noise in test logs; W&B must never reach the network.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("PL_DISABLE_FORK", "1")


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder so runs/, data/ and checkpoints land in tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

"""Shared fixtures. Real data is read from ../shared/data (beside the repository), never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Small tensors gain nothing from a second thread, and an oversubscribed machine makes OpenMP
# threads spin: tests run single-threaded (a CLI test may ask for more).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMMKGR_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


@pytest.fixture
def shared():
    """``shared("amazon-office-2014")``: a path under ../shared/data; skips when it is absent."""
    return _shared


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

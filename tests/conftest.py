"""Shared fixtures. Real data is read from ../shared/data (beside the repository), never copied."""

from __future__ import annotations

import os
import subprocess
import sys
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


TINY_EMMKGR = [
    "dataset=synthetic_tiny",
    "modality=hashing",
    "train=quick",
    "train.epochs=3",
    "train.progress=false",
    "model=emmkgr",
]


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    """A 3-epoch E-MMKGR run on synthetic_tiny (hashing text, 32-d image vectors), trained once per
    session through the installed ``emmkgr-train``; do not write into it (copy it first)."""
    root = tmp_path_factory.getbasetemp() / "tiny_emmkgr"
    run = root / "run"
    if not (run / "embeddings.pt").is_file():
        root.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "emmkgr-train"
        args = [str(exe), *TINY_EMMKGR, "hydra.run.dir=run", f"cache_dir={root / 'cache'}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"training the tiny run failed:\n{proc.stdout}\n{proc.stderr}"
    return run

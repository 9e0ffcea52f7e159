"""Run the console scripts exactly as a user does: the installed entry points, from another folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _run(
    script: str, *args: str, cwd: Path, check: bool = True, timeout: int = 600, threads: int = 1
) -> subprocess.CompletedProcess:
    """Run an installed console script; ``threads`` caps its torch/BLAS threads (small jobs gain
    nothing from more, and an oversubscribed machine makes OpenMP threads spin)."""
    exe = Path(sys.executable).parent / script
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HYDRA_FULL_ERROR": "0",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    proc = subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def run_cli():
    """``run_cli("emmkgr-train", "a=b", cwd=tmp_path)``."""
    return _run


@pytest.fixture(scope="module")
def run_dir(tiny_run_dir, tmp_path_factory, request) -> Path:
    """The session's tiny E-MMKGR run, copied per test module (the search, eval and plot commands
    write into their run folder)."""
    copy = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "run"
    shutil.copytree(tiny_run_dir, copy)
    return copy

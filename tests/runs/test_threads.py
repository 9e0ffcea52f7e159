"""``train.threads`` and the OpenMP wait policy set on import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from emmkgr_pyg.runs.threads import apply_threads, resolve_threads


def test_auto_follows_omp_num_threads_then_the_affinity(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads("auto") == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert resolve_threads("auto") == len(os.sched_getaffinity(0))
    assert resolve_threads(2) == 2
    assert resolve_threads("4") == 4


@pytest.mark.parametrize("bad", [0, -1, "many", "0"])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError, match="train.threads"):
        resolve_threads(bad)


def test_apply_threads_sets_torch():
    before = torch.get_num_threads()
    try:
        assert apply_threads(2) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_import_sets_a_passive_wait_policy_unless_given(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = "import emmkgr_pyg, os, sys; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected, "False"]  # set before anything loads torch

"""Shared helpers: atomic folder writes under concurrent writers, checksummed cache files, the
device a run trains on."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest
import torch

from emmkgr_pyg.utils import atomic_dir, file_sha256, load_checked_npy, resolve_device, save_npy


def _write_many(path: str, tag: str, rounds: int, start) -> None:
    start.wait()
    for r in range(rounds):
        with atomic_dir(path) as tmp:
            (tmp / "a.txt").write_text(f"{tag}{r}")
            (tmp / "b.txt").write_text(f"{tag}{r}")


def test_atomic_dir_two_concurrent_writers_both_succeed(tmp_path):
    target = tmp_path / "prepared"
    ctx = mp.get_context("fork")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_many, args=(str(target), t, 25, start)) for t in "xy"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]  # neither writer failed
    # the folder is one writer's whole output, and nothing temporary or stale is left beside it
    a, b = (target / "a.txt").read_text(), (target / "b.txt").read_text()
    assert a == b and a in ("x24", "y24")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".prepared.lock", "prepared"]


def test_atomic_dir_removes_a_stale_old_folder(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "f").write_text("1")
    stale = tmp_path / ".out.old-12345"  # left by a writer killed mid-swap
    stale.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "f").write_text("2")
    assert (target / "f").read_text() == "2" and not stale.exists()


def test_load_checked_npy_returns_none_for_damaged_files(tmp_path, caplog):
    path = tmp_path / "x.npy"
    digest = save_npy(path, np.arange(6.0).reshape(2, 3))
    assert digest == file_sha256(path) and len(digest) == 64
    np.testing.assert_array_equal(load_checked_npy(path, digest), np.arange(6.0).reshape(2, 3))
    assert load_checked_npy(path, "0" * 64) is None
    assert load_checked_npy(path, None) is None  # no checksum recorded: not trusted
    assert load_checked_npy(tmp_path / "missing.npy", digest) is None
    assert caplog.text.count("unreadable") == 3 and "FileNotFoundError" in caplog.text
    os.truncate(path, 0)
    assert load_checked_npy(path, digest) is None


def test_auto_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_is_this_ranks_gpu_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == torch.device("cuda", 1)


def test_cuda_without_cuda_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device=cuda: CUDA is not available here; use device=auto"):
        resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")

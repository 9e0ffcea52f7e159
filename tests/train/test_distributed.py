"""Data-parallel training: shards, and 2 CPU ranks (gloo) against one process with the same global
batch; a crashed or stuck rank ends the job with an error."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from emmkgr_pyg.nn.recommender import KGBatch
from emmkgr_pyg.train import DataParallel

WORKER = Path(__file__).with_name("distributed_worker.py")


def _worker_module():
    spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*cmd, str(WORKER), *args], env=_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("n", [1, 2, 5, 37])
def test_shards_cover_the_global_batch_once(n):
    batch = (torch.arange(n), torch.arange(n) * 10)
    parts = [DataParallel(rank, 3).shard(batch) for rank in range(3)]
    shares = [share for _, share in parts]
    assert sum(shares) == pytest.approx(1.0)
    kept = torch.cat([users for (users, _), share in parts if share > 0])
    assert kept.tolist() == list(range(n))
    for (users, tens), share in parts:
        assert users.numel() >= 1 and torch.equal(tens, users * 10)
        assert share == (0.0 if share == 0 else users.numel() / n)


def test_a_kg_batch_is_split_field_by_field():
    b = KGBatch(*(torch.arange(5) + 10 * i for i in range(3)), torch.zeros(5, 2), torch.ones(5, 2))
    part, share = DataParallel(1, 2).shard(b)
    assert share == pytest.approx(3 / 5)
    assert part.head.tolist() == [2, 3, 4] and part.tail.tolist() == [22, 23, 24]
    assert part.neg_tail.shape == (3, 2)


def test_one_process_leaves_everything_as_it_is():
    alone = DataParallel()
    batch = (torch.arange(4),)
    assert alone.shard(batch) == (batch, 1.0)
    assert alone.all_reduce([], {"bpr": torch.tensor(0.5)}) == {"bpr": 0.5}
    assert alone.decide(True) and alone.broadcast_object("run") == "run" and alone.is_main
    with pytest.raises(ValueError, match="rank 2 is outside world_size 2"):
        DataParallel(2, 2)


@pytest.mark.parametrize(
    "model, schedule", [("lightgcn", "sum"), ("emmkgr", "sum"), ("emmkgr", "alternating")]
)
def test_two_ranks_train_the_model_one_process_trains(dataset, tmp_path, model, schedule):
    proc = _torchrun(str(tmp_path / "ddp.pt"), "--model", model, "--schedule", schedule)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=False)
    alone = _worker_module().train(dataset, model, schedule, DataParallel())

    assert ddp["model"].keys() == alone["model"].keys()
    for name, value in alone["model"].items():
        torch.testing.assert_close(ddp["model"][name], value, atol=1e-5, rtol=1e-4, msg=name)
    assert len(ddp["history"]) == len(alone["history"]) == 3
    for a, b in zip(ddp["history"], alone["history"], strict=True):
        for key, value in b.items():
            if key != "seconds":
                assert a[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert ddp["best_test"] == pytest.approx(alone["best_test"], abs=1e-6)
    # training moved the parameters: the comparison is not between two initialisations
    assert alone["history"][-1]["loss/bpr"] != alone["history"][0]["loss/bpr"]


def test_rank_0_decides_when_every_rank_stops(tmp_path):
    # lr 0: validation never improves, so rank 0 stops after epoch 2 of 3 (patience 1); a rank that
    # kept training on its own would wait for rank 0 in the next all-reduce and time out
    args = ("--lr", "0", "--patience", "1", "--timeout", "30")
    proc = _torchrun(str(tmp_path / "early.pt"), *args, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = torch.load(tmp_path / "early.pt", weights_only=False)["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_a_crashed_rank_ends_the_job_with_an_error(tmp_path):
    start = time.monotonic()
    proc = _torchrun(str(tmp_path / "x.pt"), "--fail", "crash", "--timeout", "30", timeout=240)
    assert proc.returncode != 0
    assert "exitcode  : 3" in proc.stderr
    assert time.monotonic() - start < 240 and not (tmp_path / "x.pt").exists()


def test_a_stuck_rank_ends_the_job_after_the_timeout(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {
            **_env(),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
        }
        args = [sys.executable, str(WORKER), str(tmp_path / "x.pt"), "--fail", "hang", "--timeout", "5"]
        procs.append(
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    try:
        _, err = procs[0].communicate(timeout=240)  # rank 0 waits in the all-reduce of epoch 2
        assert procs[0].returncode != 0
        assert "Timed out waiting 5000ms" in err
        assert procs[1].poll() is None  # rank 1 is still stuck: only the timeout ended rank 0
    finally:
        for p in procs:
            p.kill()
            p.communicate()

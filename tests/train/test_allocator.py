"""train.allocator: glibc serves a freed large block again without new page faults under `reuse`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

from emmkgr_pyg.data.dataset import VALID
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.nn.recommender import LightGCN
from emmkgr_pyg.train import allocator as A
from emmkgr_pyg.train.trainer import TrainConfig, Trainer, config_changes

needs_glibc = pytest.mark.skipif(A.glibc() is None, reason="glibc's malloc only")

# In a child process, so that the test process keeps its allocator: a 64 MiB tensor (above glibc's
# largest mmap threshold) is written, freed and written again, before, inside and after the block.
PROBE = """
import json, resource, sys
import torch
from emmkgr_pyg.train.allocator import release_free_memory, use_allocator

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def cycle():
    x = torch.empty(64 * 2**20 // 4)
    x.fill_(1.0)
    del x

def faults_per_cycle(n=12):
    out = []
    for _ in range(n):
        f = faults()
        cycle()
        out.append(faults() - f)
    return out[-6:]  # the steady state: the first cycles may take another block from the top

out = {"before": faults_per_cycle()}
with use_allocator(sys.argv[1]) as resolved:
    out["inside"] = faults_per_cycle()
    held = rss()
out["released"] = held - rss()
out["resolved"] = resolved
with use_allocator(sys.argv[1]):
    late = torch.empty(64 * 2**20 // 4)
    late.fill_(1.0)
    pin = torch.ones(2**20)  # allocated after it: the freed block is not the top of the heap
held = rss()
del late
out["release_done"] = release_free_memory()
out["released_late"] = held - rss()
print(json.dumps(out))
"""

PAGES = 64 * 2**20 // 4096


def probe(setting: str, **env) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    done = subprocess.run(
        [sys.executable, "-c", PROBE, setting], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_glibc
def test_reuse_serves_a_freed_large_block_again_and_hands_it_back():
    got = probe("reuse")
    assert got["resolved"] == "reuse"
    assert min(got["before"]) >= PAGES // 2  # the default: a fresh mmap, faulted in page by page
    # the freed block is served again: at most one cycle of the steady state takes a new block
    assert sum(got["inside"]) <= PAGES + PAGES // 100
    assert sorted(got["inside"])[-2] < PAGES // 100
    assert got["released"] >= 32 * 2**20  # leaving hands the retained block back
    # a block allocated under reuse and freed after it goes back to the system (on request,
    # where it does not lie at the top of the heap)
    assert got["release_done"] is True
    assert got["released_late"] >= 32 * 2**20


@needs_glibc
def test_system_and_a_tuned_environment_leave_the_allocator_as_it_is():
    got = probe("system")
    assert got["resolved"] == "system"
    assert min(got["inside"]) >= PAGES // 2
    assert got["released"] < 32 * 2**20
    # auto leaves malloc alone when the environment tunes it
    tuned = probe("auto", MALLOC_TOP_PAD_="0")
    assert tuned["resolved"] == "system"
    assert min(tuned["inside"]) >= PAGES // 2


def test_resolution_and_its_errors(monkeypatch):
    with pytest.raises(ValueError, match="train.allocator: 'pooled' is not one of"):
        A.resolve_allocator("pooled")
    with pytest.raises(ValueError, match="train.allocator: 'pooled' is not one of"):
        TrainConfig(allocator="pooled")
    for name in [k for k in os.environ if k.startswith("MALLOC_")] + ["LD_PRELOAD"]:
        monkeypatch.delenv(name, raising=False)
    assert A.resolve_allocator("auto") == ("reuse" if A.glibc() is not None else "system")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert A.resolve_allocator("auto") == "system"
    assert A.resolve_allocator("system") == "system"
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")
    assert A.glibc() is None
    assert A.resolve_allocator("auto") == "system"
    with pytest.raises(ValueError, match="train.allocator=reuse: .* set train.allocator=auto or system"):
        A.resolve_allocator("reuse")


def test_a_resumed_run_may_change_the_allocator():
    assert config_changes({"allocator": "reuse", "lr": 1e-3}, {"allocator": "system", "lr": 1e-3}) == []
    assert config_changes({"lr": 1e-3}, {"allocator": "auto", "lr": 1e-3}) == []


def test_fit_trains_each_epoch_under_the_configured_allocator_and_evaluates_outside(dataset, monkeypatch):
    events = []

    @contextmanager
    def spy(setting):
        events.append(f"enter {setting}")
        yield setting
        events.append("leave")

    monkeypatch.setattr("emmkgr_pyg.train.trainer.use_allocator", spy)
    inter = InteractionGraph.from_dataset(dataset)
    valid = RankingEvaluator(inter, *dataset.interactions.part(VALID), ks=(5,))
    config = TrainConfig(
        epochs=2, batch_size=64, progress=False, ks=(5,), metric="Recall@5", allocator="system"
    )
    trainer = Trainer(LightGCN(inter, dim=8), inter, valid, None, config)
    train_epoch, evaluate = trainer.train_epoch, trainer.evaluate
    monkeypatch.setattr(trainer, "train_epoch", lambda: events.append("train") or train_epoch())
    monkeypatch.setattr(trainer, "evaluate", lambda *a: events.append("evaluate") or evaluate(*a))
    trainer.fit()
    assert events == ["enter system", "train", "leave", "evaluate"] * 2
    assert trainer.state.epoch == 2

"""``torchrun --nproc_per_node=2 $(which emmkgr-train) ...``: one model trained by two CPU ranks
equals the one-process run with the same global batch; rank 0 alone writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TINY = [
    "dataset=synthetic_tiny",
    "modality=hashing",
    "model=emmkgr",
    "train=quick",
    "train.epochs=2",
    "train.batch_size=301",  # uneven over 2 ranks, and a short last batch
    "train.kg_batch_size=257",
    "train.progress=false",
    "model.net.reg_form=squared",  # a sum over the batch: exact over slices (MMRec's norm is not)
]


def test_torchrun_trains_one_model_on_two_ranks(run_cli, tmp_path):
    exe = Path(sys.executable).parent / "emmkgr-train"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(exe)]
    common = [*TINY, f"cache_dir={tmp_path / 'c'}"]
    run_cli("emmkgr-train", *common, "hydra.run.dir=one", cwd=tmp_path)  # fills the feature cache
    proc = subprocess.run(
        [*cmd, *common, "hydra.run.dir=ddp"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "ddp", "one"]  # rank 1 wrote nothing
    ddp, one = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("ddp", "one"))
    assert ddp["world_size"] == 2 and one["world_size"] == 1
    for key in ("valid/Recall@20", "test/Recall@20", "test/NDCG@20", "best_epoch", "epochs"):
        assert ddp[key] == pytest.approx(one[key], abs=1e-6), key
    e_ddp, e_one = (torch.load(tmp_path / d / "embeddings.pt") for d in ("ddp", "one"))
    for name, value in e_one.items():
        torch.testing.assert_close(e_ddp[name], value, atol=1e-5, rtol=1e-4, msg=name)
    history = [json.loads(line) for line in (tmp_path / "ddp" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]

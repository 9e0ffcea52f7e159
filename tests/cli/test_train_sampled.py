"""``emmkgr-train train.propagation=sampled``: a mini-batch run end to end, and its errors."""

from __future__ import annotations

import json


def test_sampled_run_writes_results(run_cli, tmp_path):
    args = [
        "dataset=synthetic_tiny",
        "modality=hashing",
        "train=quick",
        "train.epochs=2",
        "train.progress=false",
        "model=emmkgr",
        "train.propagation=sampled",
        "train.fanout=[8,4]",
        "train.threads=1",
        "hydra.run.dir=run",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    proc = run_cli("emmkgr-train", *args, cwd=tmp_path, threads=2)
    assert "torch threads: 1" in proc.stdout + proc.stderr  # train.threads wins over OMP_NUM_THREADS
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["epochs"] == 2
    assert results["config"]["train"]["propagation"] == "sampled"
    assert 0.0 <= results["test/Recall@20"] <= 1.0


def test_unknown_propagation_names_the_choices(run_cli, tmp_path):
    args = ["dataset=synthetic_tiny", "modality=hashing", "train.propagation=partial", "hydra.run.dir=run"]
    proc = run_cli("emmkgr-train", *args, f"cache_dir={tmp_path / 'cache'}", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "'partial' is not one of ('full', 'sampled')" in proc.stderr + proc.stdout

import json
import re

import pytest

TINY = [
    "dataset=synthetic_tiny",
    "modality=hashing",
    "train=quick",
    "train.epochs=3",
    "train.progress=false",
]


def test_single_run_writes_results(run_cli, tmp_path):
    run_cli(
        "emmkgr-train",
        *TINY,
        "model=emmkgr",
        "hydra.run.dir=run",
        f"cache_dir={tmp_path / 'c'}",
        cwd=tmp_path,
    )
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    for key in (
        "valid/Recall@20",
        "test/Recall@10",
        "test/Recall@20",
        "test/NDCG@10",
        "test/NDCG@20",
        "test/Precision@5",
        "test/MAP@50",
        "best_epoch",
        "epochs",
        "train_seconds",
        "seconds_per_epoch",
        "config",
    ):
        assert key in res, key
    assert res["epochs"] == 3 and res["config"]["model"]["name"] == "emmkgr"
    import torch

    emb = torch.load(tmp_path / "run" / "embeddings.pt")
    assert emb["item"].shape == (150, 64) and emb["H_mm_item"].shape == (150, 64)
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "graph_stats.json").is_file()


def test_sweep_with_a_failing_job_and_summary(run_cli, tmp_path):
    proc = run_cli(
        "emmkgr-train",
        "-m",
        *TINY,
        "model=emmkgr,lightgcn",
        "seed=0,1",
        "train.lr=0.01,-1",
        "hydra.sweep.dir=sweep",
        f"cache_dir={tmp_path / 'c'}",
        cwd=tmp_path,
    )
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(jobs) == 8
    ok = [j for j in jobs if (j / "results.json").is_file()]
    failed = [j for j in jobs if (j / "error.json").is_file()]
    assert len(ok) == 4 and len(failed) == 4
    assert "Invalid learning rate" in json.loads((failed[0] / "error.json").read_text())["error"]
    assert proc.returncode == 0
    out = run_cli("emmkgr-summarize", "sweep", cwd=tmp_path).stdout
    assert "model=emmkgr train.lr=0.01" in out and "model=lightgcn train.lr=-1" in out
    lines = (tmp_path / "sweep" / "summary.csv").read_text().splitlines()
    assert lines[0].startswith("configuration,n,failed,test/Recall@10 mean,test/Recall@10 std")
    assert len(lines) == 5
    rows = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    good = next(r for r in rows if r["configuration"] == "model=emmkgr train.lr=0.01")
    assert good["n"] == 2 and good["failed"] == 0 and 0 <= good["test/Recall@20"][0] <= 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model=lightgcn", "train.lr=1e10"],
            r"emmkgr-train: epoch \d+: loss term '\w+' is \S+, over 1e\+06 times its first value \S+: "
            r"training diverged\. Lower the learning rate \(train\.lr\) or the loss weights\.",
        ),
        (
            ["model=emmkgr", "model.net.dim=7"],
            r"emmkgr-train: RelationPhases: model\.net\.dim=7 must be even and positive .*; set "
            r"model\.net\.dim=8\.",
        ),
        (
            ["dataset=amazon_office", "dataset.root=nowhere"],
            r"emmkgr-train: LcRecJsonReader: missing file nowhere/Office\.inter\.json \(.*\)\. This "
            r"format expects Office\.inter\.json, Office\.item\.json in the dataset folder "
            r"\(dataset\.root=nowhere\)\.",
        ),
    ],
    ids=["diverged", "odd-dim", "missing-data"],
)
def test_errors_a_person_can_act_on_are_one_line(run_cli, tmp_path, overrides, message):
    proc = run_cli(
        "emmkgr-train",
        *TINY,
        *overrides,
        "hydra.run.dir=run",
        f"cache_dir={tmp_path / 'c'}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and "Error executing job" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert re.fullmatch(message, line), line
    assert not (tmp_path / "run" / "results.json").exists()


MODELS = "lightgcn,lightgcn_pyg,grcn,dualgnn,lattice,bm3,freedom,lgmrec,emmkgr"


@pytest.mark.parametrize(
    "sweep, n_jobs",
    [
        (f"model={MODELS}", 9),
        ("+experiment=no_kg_loss,no_modal_modal,with_item_item,authors", 4),
        ("modality.exclude=[image],[title]", 2),
    ],
    ids=["every-model", "ablations", "modality-removed"],
)
def test_every_model_and_ablation_trains(run_cli, tmp_path, sweep, n_jobs):
    run_cli(
        "emmkgr-train",
        "-m",
        *TINY,
        "train.epochs=1",
        sweep,
        "hydra.sweep.dir=s",
        f"cache_dir={tmp_path / 'c'}",
        cwd=tmp_path,
    )
    jobs = [p for p in (tmp_path / "s").iterdir() if p.is_dir()]
    errors = [
        (p.name, json.loads((p / "error.json").read_text())["error"])
        for p in jobs
        if (p / "error.json").exists()
    ]
    assert not errors
    assert len(jobs) == n_jobs
    for job in jobs:
        res = json.loads((job / "results.json").read_text())
        assert res["epochs"] == 1 and 0 <= res["test/Recall@20"] <= 1


def test_a_fifth_modality_from_configuration_alone(run_cli, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    caption = rng.normal(size=(150, 12)).astype(np.float32)
    caption[::7] = np.nan  # items without a caption
    np.save(tmp_path / "caption.npy", caption)
    run_cli(
        "emmkgr-train",
        *TINY,
        "train.epochs=1",
        f"+modality.extra.caption.source={tmp_path / 'caption.npy'}",
        "hydra.run.dir=run",
        f"cache_dir={tmp_path / 'c'}",
        cwd=tmp_path,
    )
    stats = json.loads((tmp_path / "run" / "graph_stats.json").read_text())
    assert list(stats["nodes"]) == ["item", "title", "description", "review", "image", "caption"]
    assert stats["nodes"]["caption"] == 150 - len(range(0, 150, 7))
    assert stats["edges"]["item__has_caption__caption"] == stats["nodes"]["caption"]
    assert "caption__similar_caption__caption" in stats["edges"]
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["epochs"] == 1 and res["dataset_stats"]["modalities"]["caption"]["dim"] == 12


def test_resume_continues_an_interrupted_run(run_cli, tmp_path):
    common = [
        *TINY,
        "model=lightgcn",
        "train.patience=100",
        "hydra.run.dir=run",
        f"cache_dir={tmp_path / 'c'}",
    ]
    run_cli("emmkgr-train", *common[:-2], "train.epochs=2", *common[-2:], cwd=tmp_path)
    run_cli("emmkgr-train", *common, "train.epochs=4", "resume=true", cwd=tmp_path)
    history = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert [json.loads(h)["epoch"] for h in history] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["epochs"] == 4

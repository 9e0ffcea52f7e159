import json
import re
from pathlib import Path

import emmkgr_pyg.conf
import pytest
import yaml
from hydra.utils import get_class

CONF = Path(emmkgr_pyg.conf.__file__).parent

TINY = [
    "dataset=synthetic_tiny",
    "modality=hashing",
    "train=quick",
    "train.epochs=3",
    "train.progress=false",
]


def _train(run_cli, tmp_path, *overrides: str) -> dict:
    """One ``emmkgr-train`` run on the tiny shop into ``tmp_path/run``; its results.json."""
    run_cli(
        "emmkgr-train", *TINY, *overrides, "hydra.run.dir=run", f"cache_dir={tmp_path / 'c'}", cwd=tmp_path
    )
    return _read(tmp_path / "run" / "results.json")


def test_single_run_writes_results(run_cli, tmp_path):
    res = _train(run_cli, tmp_path, "model=emmkgr")
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


def test_softmax_over_k_negatives_from_the_command_line(run_cli, tmp_path):
    overrides = (
        "model=freedom",
        "train.rec_loss=softmax",
        "train.num_negatives=4",
        "train.rec_temperature=0.5",
    )
    res = _train(run_cli, tmp_path, *overrides)
    history = _history(tmp_path / "run")
    assert len(history) == 3
    for record in history:
        assert "loss/bpr" not in record and record["loss/softmax"] > 0 and "loss/modal_bpr" in record
    # five candidates per row: the first epoch's loss is near log 5, and it falls
    assert 1.0 < history[0]["loss/softmax"] < 1.7 and history[-1]["loss/softmax"] < history[0]["loss/softmax"]
    assert res["config"]["train"]["rec_loss"] == "softmax" and res["config"]["train"]["num_negatives"] == 4


def test_score_prior_chosen_on_validation_from_the_command_line(run_cli, tmp_path):
    res = _train(run_cli, tmp_path, "model=emmkgr_ii", "+experiment=score_prior")
    prior = res["score_prior"]
    by_weight = {float(w): v for w, v in prior["valid_by_weight"].items()}
    assert sorted(by_weight) == [0.0, 0.03, 0.1, 0.3, 1.0]
    assert by_weight[prior["weight"]] == max(by_weight.values()) == res["valid/Recall@20"]
    # weight 0 is the plain score: the validation figure early stopping saw at the best epoch
    assert by_weight[0.0] == max(r["valid/Recall@20"] for r in _history(tmp_path / "run"))
    from emmkgr_pyg.runs.load import load_run

    assert prior["weight"] > 0  # on these data the prior helps (1.0: .26 against .13 without)
    loaded = load_run(tmp_path / "run")  # scores as the run chose
    assert loaded.model.score_prior_weight == prior["weight"]


def test_interaction_prior_for_a_model_without_an_item_graph_from_the_command_line(run_cli, tmp_path):
    res = _train(run_cli, tmp_path, "model=lightgcn", "+experiment=interaction_prior")
    prior = res["score_prior"]
    by_pair = prior["valid_by_weight"]
    assert sorted(by_pair) == ["0.0,0.0", "0.0,0.03", "0.0,0.1", "0.0,0.3", "0.0,1.0"]
    assert prior["weight"] == 0.0
    assert by_pair[f"0.0,{prior['interaction_weight']}"] == max(by_pair.values()) == res["valid/Recall@20"]
    from emmkgr_pyg.runs.load import load_run

    loaded = load_run(tmp_path / "run")  # scores as the run chose
    assert loaded.model.interaction_prior_weight == prior["interaction_weight"]


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
        (
            ["model=lightgcn", "train.rec_loss=hinge"],
            r"emmkgr-train: train\.rec_loss: 'hinge' is not one of \('bpr', 'softmax'\)\.",
        ),
    ],
    ids=["diverged", "odd-dim", "missing-data", "rec-loss"],
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


MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))  # a new yaml is trained too


def _sweep(run_cli, tmp_path, swept: str) -> dict[str, Path]:
    """A 1-epoch ``-m`` sweep of ``swept`` (``key=a,b``) on the tiny shop: ``{value: the job's
    folder}``; no job may fail."""
    run_cli(
        "emmkgr-train",
        "-m",
        *TINY,
        "train.epochs=1",
        swept,
        "hydra.sweep.dir=s",
        f"cache_dir={tmp_path / 'c'}",
        cwd=tmp_path,
    )
    jobs = [p for p in (tmp_path / "s").iterdir() if p.is_dir()]
    errors = [(p.name, _read(p / "error.json")["error"]) for p in jobs if (p / "error.json").exists()]
    assert not errors
    key = swept.split("=", 1)[0] + "="
    out = {}
    for job in jobs:
        res = _read(job / "results.json")
        assert res["epochs"] == 1 and 0 <= res["test/Recall@20"] <= 1
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        out[next(o.removeprefix(key) for o in overrides if o.startswith(key))] = job
    return out


def _read(path: Path):
    return json.loads(path.read_text())


def _history(job: Path) -> list[dict]:
    return [json.loads(line) for line in (job / "history.jsonl").read_text().splitlines()]


def _kg_loss_trained(job: Path) -> bool:
    return any("loss/kg" in r for r in _history(job))


def _similar_edges(stats: dict) -> dict[str, int]:
    return {k: v for k, v in stats["edges"].items() if "__similar_" in k}


def test_every_model_trains_and_gets_the_graph_its_flags_ask_for(run_cli, tmp_path):
    jobs = _sweep(run_cli, tmp_path, f"model={','.join(MODELS)}")
    assert sorted(jobs) == MODELS
    for model, job in jobs.items():
        res = _read(job / "results.json")
        assert res["model"] == model
        cls = get_class(res["config"]["model"]["net"]["_target_"])
        stats = job / "graph_stats.json"
        assert stats.is_file() == cls.needs_features, model
        if cls.needs_features:
            assert bool(_similar_edges(_read(stats))) == cls.needs_modal_edges, model
        assert _kg_loss_trained(job) == cls.has_kg_loss, model
    fusion = {
        m: _read(jobs[m] / "results.json")["config"]["model"]["net"]["fusion"]
        for m in ("emmkgr", "emmkgr_ii")
    }
    assert fusion == {"emmkgr": "sum", "emmkgr_ii": "item_graph"}


def test_ablations_take_effect(run_cli, tmp_path, tiny_run_dir):
    """Each experiment against the plain E-MMKGR run of the same shop (``tiny_run_dir``)."""
    ref_stats = _read(tiny_run_dir / "graph_stats.json")
    ref_res = _read(tiny_run_dir / "results.json")
    assert _similar_edges(ref_stats) and "item__similar_item__item" not in ref_stats["edges"]
    assert _kg_loss_trained(tiny_run_dir)
    experiments = ["authors", "entities", "no_kg_loss", "no_modal_modal", "prune", "with_item_item"]
    jobs = _sweep(run_cli, tmp_path, "+experiment=" + ",".join(experiments))
    assert sorted(jobs) == experiments
    run = jobs
    stats = {name: _read(job / "graph_stats.json") for name, job in run.items()}
    config = {name: _read(job / "results.json")["config"] for name, job in run.items()}

    # no_kg_loss: the full graph, BPR only
    assert config["no_kg_loss"]["train"]["lambda_kg"] == 0
    assert not _kg_loss_trained(run["no_kg_loss"])
    assert stats["no_kg_loss"]["edges"] == ref_stats["edges"]

    # no_modal_modal: the item-modal edges only, and the KG loss on them
    assert not _similar_edges(stats["no_modal_modal"])
    assert stats["no_modal_modal"]["edges"] == {
        k: v for k, v in ref_stats["edges"].items() if "__similar_" not in k
    }
    assert _kg_loss_trained(run["no_modal_modal"])

    # with_item_item: the full graph plus A_ii
    edges = stats["with_item_item"]["edges"]
    assert edges.pop("item__similar_item__item") > 0 and edges == ref_stats["edges"]

    # entities: brand and category nodes linked to their items, one learnable row each, and the
    # four relations in the KG loss
    nodes, edges = stats["entities"]["nodes"], dict(stats["entities"]["edges"])
    assert nodes["brand"] > 0 and nodes["category"] > 0
    for field in ("brand", "category"):
        assert edges.pop(f"item__has_{field}__{field}") == edges.pop(f"{field}__{field}_of__item") > 0
    assert edges == ref_stats["edges"]
    assert (
        _read(run["entities"] / "results.json")["n_parameters"]
        == ref_res["n_parameters"] + 64 * (nodes["brand"] + nodes["category"]) + 32 * 4
    )
    assert _kg_loss_trained(run["entities"])

    # prune: the same graph and parameters, FREEDOM's pruning of the user-item graph in training
    assert config["prune"]["model"]["net"]["prune_ratio"] == 0.8
    assert stats["prune"]["edges"] == ref_stats["edges"]
    assert _read(run["prune"] / "results.json")["n_parameters"] == ref_res["n_parameters"]

    # authors: alternating schedule with one KG pass, margin loss on untyped negatives, self-loops,
    # trainable features, the raw-feature item-item graph, a 128-d KG
    net, train = config["authors"]["model"]["net"], config["authors"]["train"]
    assert train["schedule"] == "alternating" and train["kg_passes_per_epoch"] == 1
    assert not train["kg_typed_negatives"] and train["kg_filter_any_relation"]
    assert net["kg_loss"]["variant"] == "margin" and net["fusion"] == "authors" and net["item_graph"] == "knn"
    assert net["add_self_loops"] and net["train_features"] and net["proj_norm"] == 1.0104
    assert (net["dim"], net["kg_dim"], net["kg_init"], net["reg_form"]) == (64, 128, "rotate", "mmrec")
    # the feature tables become parameters (one row per modality node, the modality's width), and
    # the 64 extra KG dimensions widen the item table, the projections and the relation phases
    mods = ref_res["dataset_stats"]["modalities"]
    n_features = sum(ref_stats["nodes"][m] * mods[m]["dim"] for m in mods)
    wider = 64 * (ref_stats["nodes"]["item"] + sum(mods[m]["dim"] + 1 for m in mods)) + 32 * len(
        ref_stats["edges"]
    )
    assert (
        _read(run["authors"] / "results.json")["n_parameters"] == ref_res["n_parameters"] + n_features + wider
    )
    assert _kg_loss_trained(run["authors"])


def test_a_removed_modality_leaves_the_graph(run_cli, tmp_path):
    jobs = _sweep(run_cli, tmp_path, "modality.exclude=[image],[title]")
    assert sorted(jobs) == ["[image]", "[title]"]
    for removed in ("image", "title"):
        nodes = _read(jobs[f"[{removed}]"] / "graph_stats.json")["nodes"]
        assert removed not in nodes and len(nodes) == 4  # item and three modalities


def test_a_fifth_modality_from_configuration_alone(run_cli, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    caption = rng.normal(size=(150, 12)).astype(np.float32)
    caption[::7] = np.nan  # items without a caption
    np.save(tmp_path / "caption.npy", caption)
    res = _train(
        run_cli, tmp_path, "train.epochs=1", f"+modality.extra.caption.source={tmp_path / 'caption.npy'}"
    )
    stats = json.loads((tmp_path / "run" / "graph_stats.json").read_text())
    assert list(stats["nodes"]) == ["item", "title", "description", "review", "image", "caption"]
    assert stats["nodes"]["caption"] == 150 - len(range(0, 150, 7))
    assert stats["edges"]["item__has_caption__caption"] == stats["nodes"]["caption"]
    assert "caption__similar_caption__caption" in stats["edges"]
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


def test_link_prediction_on_held_out_triples(run_cli, tmp_path, tiny_run_dir):
    res = _train(run_cli, tmp_path, "model=emmkgr", "link_prediction.holdout=0.1")
    stats = _read(tmp_path / "run" / "graph_stats.json")
    full = _read(tiny_run_dir / "graph_stats.json")["edges"]
    # the held-out triples left the graph the model trained on, and are what was ranked
    assert sum(full.values()) - sum(stats["edges"].values()) == stats["held_out_triples"] == res["kg/n"] > 0
    assert all(0 < stats["edges"][k] < full[k] for k in full)
    for key in ("kg/MRR", "kg/Hits@1", "kg/Hits@10"):
        assert 0 <= res[key] <= 1, key
    assert res["kg/Hits@1"] <= res["kg/Hits@10"] and res["kg/MR"] >= 1
    # off by default: the full graph and no kg/ keys
    assert not [k for k in _read(tiny_run_dir / "results.json") if k.startswith("kg/")]

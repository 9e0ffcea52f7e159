import json
import math

import yaml

from emmkgr_pyg.eval.summary import collect_runs, configuration_labels, summarize, to_csv, to_markdown


def _job(root, num, overrides, results=None, error=None):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if results is not None:
        (job / "results.json").write_text(json.dumps(results))
    if error is not None:
        (job / "error.json").write_text(json.dumps({"error": error}))


def test_labels_keep_only_what_varies():
    labels = configuration_labels(
        [
            ["dataset=x", "model=a", "seed=0"],
            ["dataset=x", "model=a", "seed=1"],
            ["dataset=x", "model=b", "seed=0"],
        ]
    )
    assert labels == ["model=a", "model=a", "model=b"]
    assert configuration_labels([["seed=0"], ["seed=1"]]) == ["(all runs)", "(all runs)"]


def test_mean_std_per_configuration(tmp_path):
    _job(tmp_path, 0, ["model=a", "seed=0"], {"test/Recall@20": 0.1, "best_epoch": 10})
    _job(tmp_path, 1, ["model=a", "seed=1"], {"test/Recall@20": 0.3, "best_epoch": 20})
    _job(tmp_path, 2, ["model=b", "seed=0"], {"test/Recall@20": 0.2, "best_epoch": 5})
    _job(tmp_path, 3, ["model=b", "seed=1"], error="ValueError: boom")
    rows = summarize(tmp_path, ("test/Recall@20", "best_epoch"))
    a, b = rows
    assert a["configuration"] == "model=a" and a["n"] == 2 and a["failed"] == 0
    assert math.isclose(a["test/Recall@20"][0], 0.2) and math.isclose(
        a["test/Recall@20"][1], 0.1414213, rel_tol=1e-5
    )
    assert b["n"] == 1 and b["failed"] == 1 and b["test/Recall@20"] == (0.2, 0.0)
    md = to_markdown(rows, ("test/Recall@20", "best_epoch"))
    assert "| model=a" in md and "0.2000 ± 0.1414" in md and "15.0 ± 7.1" in md
    csv = to_csv(rows, ("test/Recall@20",)).splitlines()
    assert csv[0] == "configuration,n,failed,test/Recall@20 mean,test/Recall@20 std"
    assert csv[2].startswith("model=b,1,1,0.2,0.0")


def test_unreadable_jobs_are_skipped_and_named(tmp_path):
    _job(tmp_path, 0, ["model=a", "seed=0"], {"test/Recall@20": 0.1})
    _job(tmp_path, 1, ["model=a", "seed=1"], {"test/Recall@20": 0.3})
    _job(tmp_path, 2, ["model=a", "seed=2"])
    (tmp_path / "2" / "results.json").write_text('{"test/Recall@20": ')  # cut off mid-copy
    _job(tmp_path, 3, ["model=a", "seed=3"])
    (tmp_path / "3" / "results.json").write_text("[0.5]")
    _job(tmp_path, 4, ["model=a", "seed=4"], error="x")
    (tmp_path / "4" / ".hydra" / "overrides.yaml").write_text("model: [a\n")
    runs = collect_runs(tmp_path)
    bad = {r["job"]: r["unreadable"] for r in runs if "unreadable" in r}
    assert sorted(bad) == ["2", "3", "4"]
    assert bad["2"].startswith(
        f"{tmp_path / '2' / 'results.json'}: JSONDecodeError: Expecting value: line 1 column 20"
    )
    assert bad["3"] == f"{tmp_path / '3' / 'results.json'}: ValueError: a JSON list, not an object"
    assert bad["4"].startswith(f"{tmp_path / '4' / '.hydra' / 'overrides.yaml'}: ")
    (row,) = summarize(tmp_path, ("test/Recall@20",))
    assert row["n"] == 2 and row["failed"] == 0 and math.isclose(row["test/Recall@20"][0], 0.2)

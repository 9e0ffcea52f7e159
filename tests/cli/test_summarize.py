import json

import yaml


def _job(root, num, seed, results):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}"]))
    (job / "results.json").write_text(results)


def test_a_corrupt_results_file_is_skipped_and_reported(run_cli, tmp_path):
    _job(tmp_path / "sweep", 0, 0, json.dumps({"test/Recall@20": 0.1}))
    _job(tmp_path / "sweep", 1, 1, json.dumps({"test/Recall@20": 0.3}))
    _job(tmp_path / "sweep", 2, 2, '{"test/Recall@20": ')
    proc = run_cli("emmkgr-summarize", "sweep", "--metrics", "test/Recall@20", cwd=tmp_path)
    assert proc.stderr.strip() == (
        "emmkgr-summarize: skipped job 2: sweep/2/results.json: JSONDecodeError: Expecting value: "
        "line 1 column 20 (char 19)"
    )
    assert "| (all runs)    | 2 | 0      | 0.2000 ± 0.1414" in proc.stdout
    rows = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert [r["n"] for r in rows] == [2]

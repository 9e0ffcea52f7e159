import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["dataset=synthetic_tiny", "modality=hashing", "train=quick", "train.epochs=3", "train.progress=false"]


def tiny_run(tmp_path_factory) -> Path:
    """A 3-epoch E-MMKGR run on synthetic_tiny, trained once per session and copied per module."""
    root = tmp_path_factory.getbasetemp() / "tiny_emmkgr"
    if not (root / "run" / "embeddings.pt").is_file():
        root.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "emmkgr-train"
        args = [str(exe), *TINY, "model=emmkgr", "hydra.run.dir=run", f"cache_dir={root / 'cache'}"]
        subprocess.run(args, cwd=root, check=True, capture_output=True, timeout=600)
    copy = tmp_path_factory.mktemp("search") / "run"
    shutil.copytree(root / "run", copy)
    return copy


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def test_search_prints_a_table_and_saves_the_index(run_cli, run_dir, tmp_path):
    out = run_cli("emmkgr-search", f"run_dir={run_dir}", "query=red stainless steel frying pan", "top_k=7",
                  cwd=tmp_path).stdout
    assert "| rank | item id" in out and "| score" in out
    lines = [line for line in out.splitlines() if line.startswith("| ") and "SYN-" in line]
    assert len(lines) == 7 and lines[0].startswith("| 1 ")
    assert (run_dir / "search_index.faiss").is_file() and (run_dir / "search_index.json").is_file()


def test_search_json_with_filters_keeps_top_k_full(run_cli, run_dir, tmp_path):
    proc = run_cli("emmkgr-search", f"run_dir={run_dir}", "query=wireless headphones", "top_k=4",
                   "category=electronics", "output=json", cwd=tmp_path)
    res = json.loads(proc.stdout)
    assert res["query"] == "wireless headphones" and res["filters"]["category"] == "electronics"
    assert [r["rank"] for r in res["results"]] == [1, 2, 3, 4]
    assert all("Electronics" in r["categories"] for r in res["results"])
    scores = [r["score"] for r in res["results"]]
    assert scores == sorted(scores, reverse=True)
    brand = json.loads(run_cli("emmkgr-search", f"run_dir={run_dir}", "query=a mug", "brand=acme",
                               "method=vector_baseline", "search.mapping=paper", "output=json",
                               cwd=tmp_path).stdout)
    assert brand["method"] == "vector_baseline" and all(r["brand"] == "Acme" for r in brand["results"])


def test_similar_lists_other_items(run_cli, run_dir, tmp_path):
    res = json.loads(run_cli("emmkgr-similar", f"run_dir={run_dir}", "item=SYN-000010", "top_k=5",
                             "output=json", cwd=tmp_path).stdout)
    assert res["item"]["item_id"] == "SYN-000010"
    ids = [r["item_id"] for r in res["results"]]
    assert len(ids) == 5 and "SYN-000010" not in ids
    table = run_cli("emmkgr-similar", f"run_dir={run_dir}", "item=SYN-000010", "top_k=3", cwd=tmp_path).stdout
    assert "items similar to SYN-000010" in table


@pytest.mark.parametrize(
    "script,args,message",
    [
        ("emmkgr-search", ["query= "], "query is empty"),
        ("emmkgr-search", [], "query is empty"),
        ("emmkgr-similar", ["item=SYN-999999"], "item=SYN-999999: no such item"),
        ("emmkgr-similar", [], "item is not set"),
        ("emmkgr-search", ["query=pan", "search.embedding=user"], "search.embedding=user"),
    ],
)
def test_errors_are_one_clear_line(run_cli, run_dir, tmp_path, script, args, message):
    proc = run_cli(script, f"run_dir={run_dir}", *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_folder_without_a_trained_model_is_refused(run_cli, tmp_path):
    empty = tmp_path / "not_trained"
    (empty / ".hydra").mkdir(parents=True)
    for script, arg in (("emmkgr-search", "query=pan"), ("emmkgr-similar", "item=SYN-000001")):
        proc = run_cli(script, f"run_dir={empty}", arg, cwd=tmp_path, check=False)
        assert proc.returncode == 2 and "is not a trained run" in proc.stderr, proc.stderr
    proc = run_cli("emmkgr-search", "query=pan", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "run_dir is not set" in proc.stderr

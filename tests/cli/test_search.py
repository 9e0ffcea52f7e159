import json
import shutil

import pytest


def test_search_prints_a_table_and_saves_the_index(run_cli, run_dir, tmp_path):
    out = run_cli(
        "emmkgr-search", f"run_dir={run_dir}", "query=red stainless steel frying pan", "top_k=7", cwd=tmp_path
    ).stdout
    assert "| rank | item id" in out and "| score" in out
    lines = [line for line in out.splitlines() if line.startswith("| ") and "SYN-" in line]
    assert len(lines) == 7 and lines[0].startswith("| 1 ")
    assert (run_dir / "search_index.faiss").is_file() and (run_dir / "search_index.json").is_file()


def test_search_json_with_filters_keeps_top_k_full(run_cli, run_dir, tmp_path):
    proc = run_cli(
        "emmkgr-search",
        f"run_dir={run_dir}",
        "query=wireless headphones",
        "top_k=4",
        "category=electronics",
        "output=json",
        cwd=tmp_path,
    )
    res = json.loads(proc.stdout)
    assert res["query"] == "wireless headphones" and res["filters"]["category"] == "electronics"
    assert [r["rank"] for r in res["results"]] == [1, 2, 3, 4]
    assert all("Electronics" in r["categories"] for r in res["results"])
    scores = [r["score"] for r in res["results"]]
    assert scores == sorted(scores, reverse=True)
    brand = json.loads(
        run_cli(
            "emmkgr-search",
            f"run_dir={run_dir}",
            "query=a mug",
            "brand=acme",
            "method=vector_baseline",
            "search.mapping=paper",
            "output=json",
            cwd=tmp_path,
        ).stdout
    )
    assert brand["method"] == "vector_baseline" and all(r["brand"] == "Acme" for r in brand["results"])


def test_similar_lists_other_items(run_cli, run_dir, tmp_path):
    res = json.loads(
        run_cli(
            "emmkgr-similar", f"run_dir={run_dir}", "item=SYN-000010", "top_k=5", "output=json", cwd=tmp_path
        ).stdout
    )
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
        ("emmkgr-search", ["query=pan", "top_k=2.7"], "top_k=2.7: give a whole number of results"),
        ("emmkgr-similar", ["item=SYN-000010", "top_k=-3"], "top_k=-3: give a whole number"),
        ("emmkgr-search", ["query=pan", "top_k=ten"], "top_k=ten: give a whole number"),
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


def test_cold_start_items_saved_in_the_index_are_served(run_cli, run_dir, tmp_path):
    from emmkgr_pyg.runs import load_run
    from emmkgr_pyg.runs.search import open_index
    from emmkgr_pyg.search import ColdStart, ItemMeta

    run_dir = shutil.copytree(run_dir, tmp_path / "run")  # this test writes into the run's index
    run = load_run(run_dir)
    index = open_index(run_dir, ItemMeta.from_catalog(run.dataset.catalog))
    ColdStart.from_run(run, index).add(
        "NEW-1",
        {"title": "Acme Red Cast Iron Frying Pan, Large"},
        brand="Acme",
        categories=["Home & Kitchen"],
    )
    index.save(run_dir)
    res = json.loads(
        run_cli(
            "emmkgr-similar", f"run_dir={run_dir}", "item=NEW-1", "top_k=3", "output=json", cwd=tmp_path
        ).stdout
    )
    assert res["item"]["title"] == "Acme Red Cast Iron Frying Pan, Large" and len(res["results"]) == 3
    found = json.loads(
        run_cli(
            "emmkgr-search",
            f"run_dir={run_dir}",
            "query=cast iron frying pan",
            "top_k=200",
            "output=json",
            cwd=tmp_path,
        ).stdout
    )
    assert "NEW-1" in [r["item_id"] for r in found["results"]]


@pytest.mark.parametrize("root", ["search", "eval_search", "plot"])
def test_root_configs_compose_with_valid_search_settings(root):
    from hydra import compose, initialize_config_module

    from emmkgr_pyg.runs.artifacts import SEARCHABLE
    from emmkgr_pyg.search import INDEX_KINDS, MAPPINGS

    with initialize_config_module(config_module="emmkgr_pyg.conf", version_base="1.3"):
        cfg = compose(config_name=root, overrides=["run_dir=/runs/x"])
    assert cfg.run_dir == "/runs/x"
    if root == "plot":
        assert cfg.out == "/runs/x/embedding_plot.png" and cfg.embedding in SEARCHABLE
        return
    s = cfg.search
    assert s.mapping in MAPPINGS and s.embedding in SEARCHABLE and s.index in INDEX_KINDS
    if root == "eval_search":
        assert cfg.query_dir == "/runs/x" and cfg.out_dir == "/runs/x"


def test_a_huge_top_k_returns_the_whole_catalogue(run_cli, run_dir, tmp_path):
    # 1e11 rows would be ~745 GiB of padding: the answer is capped at the catalogue
    for method in ("emmkgr", "vector_baseline"):
        res = json.loads(
            run_cli(
                "emmkgr-search",
                f"run_dir={run_dir}",
                "query=a mug",
                "top_k=1e11",
                f"method={method}",
                "output=json",
                cwd=tmp_path,
            ).stdout
        )
        n_items = json.loads((run_dir / "search_index.json").read_text())["n_items"]
        assert len(res["results"]) == n_items


def test_a_run_naming_a_foreign_class_is_refused_in_one_line(run_cli, run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    marker = tmp_path / "pwned"
    results = json.loads((run / "results.json").read_text())
    results["config"]["dataset"]["reader"] = {"_target_": "os.system", "command": f"touch {marker}"}
    (run / "results.json").write_text(json.dumps(results))
    for f in ("search_index.faiss", "search_index.json"):  # make the search load the run
        (run / f).unlink(missing_ok=True)
    proc = run_cli("emmkgr-search", f"run_dir={run}", "query=pan", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "dataset.reader._target_=os.system is not a class of emmkgr_pyg" in proc.stderr
    assert not marker.exists()


def test_search_applies_the_configured_search_that_eval_search_evaluates(run_cli, run_dir, tmp_path):
    from hydra import compose, initialize_config_module

    from emmkgr_pyg.eval.search_queries import SearchQuery
    from emmkgr_pyg.runs import load_run
    from emmkgr_pyg.runs.search import RunSearches

    query = "stainless steel pan"
    res = json.loads(
        run_cli(
            "emmkgr-search", f"run_dir={run_dir}", f"query={query}", "top_k=8", "output=json", cwd=tmp_path
        ).stdout
    )
    # conf/search/default.yaml
    want = (
        "dense vector baseline + BM25 (z-scores, weight 0.5) + feedback in H_mm_item (top 5, weight 0.25, "
        "first 1 kept)"
    )
    assert res["search"] == want
    # the reference: the evaluated search's scores of every item, ranked
    with initialize_config_module(config_module="emmkgr_pyg.conf", version_base="1.3"):
        cfg = compose(config_name="search")
    run = load_run(run_dir)
    scores = RunSearches(run, [query]).emmkgr(cfg.search)([SearchQuery("q", "t", "t", query, [])])[0]
    ids = run.dataset.catalog.item_ids
    ranked = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-scores[i], i))[:8]]
    assert [r["item_id"] for r in res["results"]] == ranked
    assert [r["score"] for r in res["results"]] == pytest.approx(sorted(scores, reverse=True)[:8], abs=1e-6)
    # one vector per query: the faiss index answers, with the plain mapping's cosine scores
    plain = json.loads(
        run_cli(
            "emmkgr-search",
            f"run_dir={run_dir}",
            f"query={query}",
            "top_k=8",
            "search.scorer=cosine",
            "search.carry_raw=0",
            "search.fuse_bm25=false",
            "search.feedback=null",
            "output=json",
            cwd=tmp_path,
        ).stdout
    )
    assert plain["search"] == "paper mapping (faiss index)"
    assert all(-1.0 <= r["score"] <= 1.0 for r in plain["results"])
    assert [r["item_id"] for r in plain["results"]] != [r["item_id"] for r in res["results"]]


def test_search_with_feedback_in_the_learned_space(run_cli, run_dir, tmp_path):
    from hydra import compose, initialize_config_module

    from emmkgr_pyg.eval.search_queries import SearchQuery
    from emmkgr_pyg.runs import load_run
    from emmkgr_pyg.runs.search import RunSearches

    query = "stainless steel pan"
    over = [
        "search.scorer=dense",
        "search.fuse_bm25=false",
        "search.feedback=item",
        "search.feedback_k=3",
        "search.feedback_weight=1",
    ]
    res = json.loads(
        run_cli(
            "emmkgr-search",
            f"run_dir={run_dir}",
            f"query={query}",
            "top_k=8",
            "output=json",
            *over,
            cwd=tmp_path,
        ).stdout
    )
    assert res["search"] == "dense vector baseline + feedback in item (top 3, weight 1, first 1 kept)"
    with initialize_config_module(config_module="emmkgr_pyg.conf", version_base="1.3"):
        cfg = compose(config_name="search", overrides=over)
    run = load_run(run_dir)
    scores = RunSearches(run, [query]).emmkgr(cfg.search)([SearchQuery("q", "t", "t", query, [])])[0]
    ids = run.dataset.catalog.item_ids
    ranked = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-scores[i], i))[:8]]
    assert [r["item_id"] for r in res["results"]] == ranked
    bad = run_cli(
        "emmkgr-search",
        f"run_dir={run_dir}",
        f"query={query}",
        "search.feedback=pixels",
        cwd=tmp_path,
        check=False,
    )
    assert bad.returncode != 0 and "search.feedback=pixels: choose one of" in bad.stderr

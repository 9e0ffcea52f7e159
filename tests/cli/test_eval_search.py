import json

SMALL = [
    "queries.protocol=lookup",
    "queries.n_fine=30",
    "queries.n_category=8",
    "queries.n_attribute=8",
    "queries.min_targets=3",
    "queries.max_share=0.2",
    "progress=false",
]


def test_eval_search_leakfree_by_default_reports_every_competitor(run_cli, run_dir, tmp_path):
    args = ["queries.n_fine=20", "queries.n_category=6", "queries.min_targets=3", "queries.max_share=0.2"]
    out_dir = tmp_path / "leakfree"
    run_cli(
        "emmkgr-eval-search",
        f"run_dir={run_dir}",
        *args,
        "progress=false",
        f"query_dir={out_dir}",
        f"out_dir={out_dir}",
        "search.scorer=kg",
        "search.fuse_bm25=true",
        cwd=tmp_path,
    )
    res = json.loads((out_dir / "search_results.json").read_text())
    q = res["settings"]["queries"]
    assert (q["protocol"], q["part"]) == ("leakfree", "test") and q["counts"]["coarse"] > 0
    for qset in ("fine", "coarse"):
        assert list(res[qset]) == ["emmkgr", "bm25", "vector_baseline", "hybrid"]
    manifest = json.loads((out_dir / "search_queries.json").read_text())
    assert manifest["fine_source"] == "heldout_review"
    lines = [json.loads(x) for x in (out_dir / "search_queries_coarse.jsonl").read_text().splitlines()]
    assert {(x["kind"], x["source"]) for x in lines} == {("category", "categories")}
    assert "scorer=kg" in (out_dir / "search_results.md").read_text()


def test_eval_search_writes_both_sets_for_both_methods(run_cli, run_dir, tmp_path):
    out = run_cli("emmkgr-eval-search", f"run_dir={run_dir}", *SMALL, cwd=tmp_path).stdout
    res = json.loads((run_dir / "search_results.json").read_text())
    metrics = ["Recall@5", "Recall@10", "Recall@20", "MAP@10", "MRR", "NDCG@10"]
    for qset in ("fine", "coarse"):
        for method in ("emmkgr", "bm25", "vector_baseline", "hybrid"):
            assert list(res[qset][method]) == metrics
            assert all(0.0 <= v <= 1.0 for v in res[qset][method].values())
    assert res["settings"]["queries"]["counts"] == {"fine": 30, "coarse": 16}
    assert res["settings"]["search"]["mapping"] == "paper"
    md = (run_dir / "search_results.md").read_text()
    assert "| query set | method" in md and "vector_baseline" in md
    assert "| fine" in out and "wrote" in out
    assert len((run_dir / "search_queries_fine.jsonl").read_text().splitlines()) == 30
    # the saved query sets are reused while their settings match, rebuilt when they change
    again = run_cli(
        "emmkgr-eval-search",
        f"run_dir={run_dir}",
        *SMALL,
        "search.mapping=propagated",
        f"out_dir={tmp_path / 'propagated'}",
        cwd=tmp_path,
    ).stdout
    assert "reusing the query sets" in again
    assert (
        json.loads((tmp_path / "propagated" / "search_results.json").read_text())["settings"]["search"][
            "mapping"
        ]
        == "propagated"
    )
    other = run_cli(
        "emmkgr-eval-search",
        f"run_dir={run_dir}",
        *SMALL[:-1],
        "queries.seed=3",
        "progress=false",
        f"out_dir={tmp_path / 'seed3'}",
        cwd=tmp_path,
    ).stdout
    assert "built" in other and "reusing" not in other


def test_eval_search_reads_a_query_file_a_person_wrote(run_cli, run_dir, tmp_path):
    from emmkgr_pyg.runs import load_run

    cat = load_run(run_dir).dataset.catalog
    leaf = cat.categories[0][-1]
    path = tmp_path / "needs.jsonl"
    rows = [{"query": "something for the kitchen", "category": leaf, "set": "needs"}]
    rows += [{"query": "this one", "targets": [cat.item_ids[0]], "set": "needs"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out_dir = tmp_path / "file"
    run_cli(
        "emmkgr-eval-search",
        f"run_dir={run_dir}",
        f"query_file={path}",
        "progress=false",
        f"out_dir={out_dir}",
        f"query_dir={out_dir}",
        cwd=tmp_path,
    )
    res = json.loads((out_dir / "search_results.json").read_text())
    assert res["settings"]["queries"] == {"file": str(path), "counts": {"needs": 2}}
    assert list(res) == ["needs", "settings"]
    assert list(res["needs"]) == ["emmkgr", "bm25", "vector_baseline", "hybrid"]
    assert not (out_dir / "search_queries.json").exists()  # read, not built or cached
    assert f"queries from {path}" in (out_dir / "search_results.md").read_text()
    path.write_text('{"query": "x", "category": "No Such Shelf"}\n')
    proc = run_cli(
        "emmkgr-eval-search", f"run_dir={run_dir}", f"query_file={path}", cwd=tmp_path, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"emmkgr-eval-search: {path}:1: field 'category'")


def test_eval_search_needs_a_trained_run(run_cli, tmp_path):
    proc = run_cli("emmkgr-eval-search", f"run_dir={tmp_path}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "is not a trained run" in proc.stderr

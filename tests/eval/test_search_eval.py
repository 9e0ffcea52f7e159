import math

import numpy as np
import pytest

from emmkgr_pyg.eval.search_eval import METRIC_NAMES, evaluate, metric_names, results_table
from emmkgr_pyg.eval.search_queries import SearchQuery


def slow_metrics(scores, targets, ks=(5, 10, 20)):
    """The obvious definitions, one query at a time, on the full ranking (ties: lower index first)."""
    out = {name: [] for name in metric_names(ks)}
    for s, t in zip(scores, targets):
        ranking = sorted(range(len(s)), key=lambda i: (-s[i], i))
        rel = [1 if i in t else 0 for i in ranking]
        for k in ks:
            out[f"Recall@{k}"].append(sum(rel[:k]) / len(t))
        precisions = [sum(rel[: r + 1]) / (r + 1) for r in range(10)]
        out["MAP@10"].append(sum(p * h for p, h in zip(precisions, rel[:10])) / min(len(t), 10))
        out["MRR"].append(1.0 / (rel.index(1) + 1))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(rel[:10]))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(t), 10)))
        out["NDCG@10"].append(dcg / idcg)
    return {k: sum(v) / len(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    n_items, n_queries = 40, 64
    scores = np.round(rng.random((n_queries, n_items)), 1)  # many ties
    targets = [
        set(rng.choice(n_items, rng.integers(1, 15), replace=False).tolist()) for _ in range(n_queries)
    ]
    ids = [f"x{i}" for i in range(n_items)]
    queries = [
        SearchQuery(f"q{j}", "coarse", "category", f"q{j}", [ids[i] for i in sorted(t)])
        for j, t in enumerate(targets)
    ]
    row = {q.qid: j for j, q in enumerate(queries)}
    return scores, targets, ids, queries, lambda b: scores[[row[q.qid] for q in b]]


def test_metrics_match_the_obvious_definitions(case):
    scores, targets, ids, queries, score_fn = case
    got = evaluate(score_fn, queries, ids, batch_size=10)
    want = slow_metrics(scores, targets)
    assert (
        list(got) == list(METRIC_NAMES) == ["Recall@5", "Recall@10", "Recall@20", "MAP@10", "MRR", "NDCG@10"]
    )
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name


def test_reported_keys_follow_the_requested_cut_offs(case):
    scores, targets, ids, queries, score_fn = case
    got = evaluate(score_fn, queries, ids, ks=(1, 3, 30))
    want = slow_metrics(scores, targets, ks=(1, 3, 30))
    assert list(got) == ["Recall@1", "Recall@3", "Recall@30", "MAP@10", "MRR", "NDCG@10"]
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12) and value > 0, name
    header, rows = results_table({"coarse": {"mine": got}})
    assert header == ["query set", "method", *got] and rows[0][2:] == list(got.values())


def test_targets_outside_the_ranking_are_an_error():
    q = [SearchQuery("q0", "fine", "item", "a pan", ["gone"])]
    with pytest.raises(ValueError, match="rebuild_queries=true"):
        evaluate(lambda b: np.zeros((len(b), 2)), q, ["a", "b"])

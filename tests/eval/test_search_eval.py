import math
import re

import numpy as np
import pytest

from emmkgr_pyg.data.synthetic import SyntheticReader
from emmkgr_pyg.eval.search_eval import (
    METRIC_NAMES,
    QuerySetConfig,
    SearchQuery,
    build_query_sets,
    evaluate,
    load_queries,
    query_metrics,
    save_queries,
    tokens,
)


def slow_metrics(scores, targets):
    """The obvious definitions, one query at a time, on the full ranking (ties: lower index first)."""
    out = {name: [] for name in METRIC_NAMES}
    for s, t in zip(scores, targets):
        ranking = sorted(range(len(s)), key=lambda i: (-s[i], i))
        rel = [1 if i in t else 0 for i in ranking]
        for k in (5, 10, 20):
            out[f"Recall@{k}"].append(sum(rel[:k]) / len(t))
        precisions = [sum(rel[: r + 1]) / (r + 1) for r in range(10)]
        out["MAP@10"].append(sum(p * h for p, h in zip(precisions, rel[:10])) / min(len(t), 10))
        out["MRR"].append(1.0 / (rel.index(1) + 1))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(rel[:10]))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(t), 10)))
        out["NDCG@10"].append(dcg / idcg)
    return {k: sum(v) / len(v) for k, v in out.items()}


def test_metrics_match_the_obvious_definitions():
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
    got = evaluate(lambda b: scores[[row[q.qid] for q in b]], queries, ids, batch_size=10)
    want = slow_metrics(scores, targets)
    assert list(got) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name


def test_query_metrics_by_hand():
    hits = np.zeros((1, 20), dtype=bool)
    hits[0, [0, 2, 11]] = True
    m = query_metrics(hits, np.array([4]), np.array([1]))
    assert m["Recall@5"][0] == pytest.approx(2 / 4) and m["Recall@20"][0] == pytest.approx(3 / 4)
    assert m["MAP@10"][0] == pytest.approx((1 / 1 + 2 / 3) / 4)
    assert m["MRR"][0] == 1.0
    idcg = sum(1 / math.log2(r + 2) for r in range(4))
    assert m["NDCG@10"][0] == pytest.approx((1 + 1 / math.log2(4)) / idcg)


@pytest.fixture(scope="module")
def synthetic():
    return SyntheticReader(n_users=200, n_items=150, n_interactions=2000, image_dim=8).read(None, "tiny")


def _descriptions(ds):
    out = [None] * ds.n_items
    mod = ds.modalities["description"]
    for i, t in zip(mod.item_index, mod.raw):
        out[i] = t
    return out


def test_query_sets_follow_their_definitions(synthetic):
    cat, desc = synthetic.catalog, _descriptions(synthetic)
    cfg = QuerySetConfig(n_fine=40, n_category=10, n_attribute=10, min_targets=3, max_share=0.2)
    sets = build_query_sets(cat, desc, cfg)
    pos = {x: i for i, x in enumerate(cat.item_ids)}
    texts = [f"{t or ''} \n {d or ''}".lower() for t, d in zip(cat.title, desc)]
    assert len(sets["fine"]) == 40
    for q in sets["fine"]:
        (target,) = q.targets
        i = pos[target]
        phrase = q.text.lower()
        assert phrase in texts[i], q
        assert phrase != cat.title[i].lower() and cat.title[i].lower() not in phrase
        assert not any(phrase in t for j, t in enumerate(texts) if j != i), q
        assert q.source in ("title", "description") and len(q.text.split()) >= 3
    kinds = {q.kind for q in sets["coarse"]}
    assert kinds == {"category", "attribute"}
    for q in sets["coarse"]:
        assert 3 <= len(q.targets) <= 0.2 * cat.n_items
        if q.kind == "category":
            want = [x for x, path in zip(cat.item_ids, cat.categories) if q.text in path]
        else:
            pattern = re.compile(rf"(?<![\w-]){re.escape(q.text)}(?![\w-])")
            want = [x for x, t in zip(cat.item_ids, texts) if pattern.search(" ".join(tokens(t)))]
            assert q.text not in {b.lower() for b in cat.brand if b}
        assert sorted(q.targets) == sorted(want), q.text


def test_query_sets_are_seeded_and_round_trip_as_jsonl(synthetic, tmp_path):
    cat, desc = synthetic.catalog, _descriptions(synthetic)
    cfg = QuerySetConfig(n_fine=20, n_category=5, n_attribute=5, min_targets=3, max_share=0.2)
    a, b = build_query_sets(cat, desc, cfg), build_query_sets(cat, desc, cfg)
    assert a == b
    c = build_query_sets(cat, desc, QuerySetConfig(**{**vars(cfg), "seed": 1}))
    assert [q.text for q in c["fine"]] != [q.text for q in a["fine"]]
    path = save_queries(tmp_path / "fine.jsonl", a["fine"])
    assert len(path.read_text().splitlines()) == 20
    assert load_queries(path) == a["fine"]
    (tmp_path / "bad.jsonl").write_text('{"qid": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_queries(tmp_path / "bad.jsonl")


def test_targets_outside_the_ranking_are_an_error():
    q = [SearchQuery("q0", "fine", "item", "a pan", ["gone"])]
    with pytest.raises(ValueError, match="rebuild_queries=true"):
        evaluate(lambda b: np.zeros((len(b), 2)), q, ["a", "b"])

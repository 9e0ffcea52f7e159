"""hit_metrics against hand computation, a slow reference, ranx (an independent implementation) and
its error paths."""

import math

import numpy as np
import pytest
import torch

from emmkgr_pyg.eval.metrics import hit_metrics, parse_metric

#: hand-made rankings of 12 documents (best first) and their relevant documents
RANKINGS = [
    ([3, 1, 4, 0, 5, 9, 2, 6, 8, 7, 11, 10], {3, 4, 11}),  # hits at 1, 3, 11
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], {9}),  # one hit, late
    ([5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6], {5, 4, 3, 2, 1, 0, 11}),  # |R| = 7 > k = 5
    ([7, 2, 9, 1, 0, 3, 4, 5, 6, 8, 10, 11], {10, 11}),  # nothing relevant in the top 10
    ([1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], {0, 2, 4, 6, 8, 10}),
]
NAMES = [f"{m}@{k}" for m in ("Recall", "Precision", "NDCG", "MAP", "MRR") for k in (1, 3, 5, 10)] + ["MRR"]


def _hits(rankings):
    return np.array([[d in rel for d in ranking] for ranking, rel in rankings]), np.array(
        [len(rel) for _, rel in rankings]
    )


def test_one_ranking_by_hand():
    hits, n_rel = _hits(RANKINGS[:1])  # relevant at ranks 1, 3 and 11 of 3 relevant
    m = {k: float(v[0]) for k, v in hit_metrics(hits, n_rel, NAMES).items()}
    assert list(m) == NAMES
    assert m["Recall@1"] == 1 / 3 and m["Recall@3"] == 2 / 3 and m["Recall@10"] == 2 / 3
    assert m["Precision@3"] == pytest.approx(2 / 3) and m["Precision@10"] == pytest.approx(0.2)
    assert m["MAP@3"] == pytest.approx((1 + 2 / 3) / 3) and m["MAP@1"] == 1.0
    idcg3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["NDCG@3"] == pytest.approx((1 + 1 / math.log2(4)) / idcg3)
    assert m["MRR@1"] == 1.0 and m["MRR"] == 1.0
    late = {k: float(v[0]) for k, v in hit_metrics(*_hits(RANKINGS[1:2]), NAMES).items()}
    assert late["MRR@5"] == 0.0 and late["MRR@10"] == pytest.approx(0.1) and late["MRR"] == pytest.approx(0.1)


def slow_reference(hits, n_rel, name):
    """The module docstring's formula for one row, in Python loops."""
    metric, _, cut = name.partition("@")
    k = int(cut) if cut else len(hits)
    h = [float(x) for x in hits[:k]]
    if metric == "Recall":
        return sum(h) / n_rel
    if metric == "Precision":
        return sum(h) / k
    if metric == "NDCG":
        dcg = sum(x / math.log2(r + 2) for r, x in enumerate(h))
        return dcg / sum(1 / math.log2(r + 2) for r in range(min(n_rel, k)))
    if metric == "MAP":
        return sum(h[r] * sum(h[: r + 1]) / (r + 1) for r in range(len(h))) / min(n_rel, k)
    return next((1 / (r + 1) for r, x in enumerate(h) if x), 0.0)


def test_matches_a_slow_reference_on_random_rows():
    rng = np.random.default_rng(0)
    hits = rng.random((40, 15)) < 0.2
    n_rel = hits.sum(1) + rng.integers(0, 4, 40)  # some relevant items rank below the matrix
    n_rel = np.maximum(n_rel, 1)
    names = [*NAMES, "Recall@15", "NDCG@20", "MAP@20", "MRR@20"]
    got = hit_metrics(hits, n_rel, names)
    for name in names:
        want = [slow_reference(hits[u], int(n_rel[u]), name) for u in range(len(hits))]
        np.testing.assert_allclose(got[name].numpy(), want, rtol=0, atol=1e-12, err_msg=name)


def test_matches_ranx_on_hand_made_rankings():
    import ranx  # an independent implementation (the dev extra installs it; numba, pandas)

    hits, n_rel = _hits(RANKINGS)
    ours = hit_metrics(torch.from_numpy(hits), torch.from_numpy(n_rel), NAMES)
    qrels = ranx.Qrels({f"q{j}": {f"d{d}": 1 for d in rel} for j, (_, rel) in enumerate(RANKINGS)})
    run = ranx.Run(
        {
            f"q{j}": {f"d{d}": float(12 - r) for r, d in enumerate(ranking)}
            for j, (ranking, _) in enumerate(RANKINGS)
        }
    )
    ranx_names = {"Recall": "recall", "Precision": "precision", "NDCG": "ndcg", "MAP": "map", "MRR": "mrr"}
    asked = {
        name: ranx_names[name.split("@")[0]] + (name[name.index("@") :] if "@" in name else "")
        for name in NAMES
    }
    theirs = ranx.evaluate(qrels, run, list(asked.values()), return_mean=False)
    for name, metric in asked.items():
        want = np.asarray(theirs[metric], dtype=np.float64)
        got = ours[name].numpy()
        if name.startswith("MAP@"):
            # ranx divides the summed precisions by |R|; MAP@k here (MMRec, PyG's LinkPredMAP) by
            # min(|R|, k), so a row whose relevant items cannot all fit in the top k can reach 1
            k = int(name.split("@")[1])
            got = got * np.minimum(n_rel, k) / n_rel
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)


def test_cut_offs_beyond_the_matrix_count_the_ranks_it_has():
    hits = np.array([[True, False, True]])
    m = hit_metrics(hits, np.array([2]), ["Recall@50", "Precision@50", "NDCG@50", "MAP@50"])
    assert float(m["Recall@50"][0]) == 1.0 and float(m["Precision@50"][0]) == pytest.approx(2 / 50)
    assert float(m["NDCG@50"][0]) == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert float(m["MAP@50"][0]) == pytest.approx((1 + 2 / 3) / 2)


def test_bad_requests_name_the_fix():
    assert parse_metric("NDCG@10") == ("NDCG", 10) and parse_metric("MRR") == ("MRR", None)
    for bad in ("HitRate@5", "Recall@0", "Recall@x", "recall@5"):
        with pytest.raises(ValueError, match="not a metric"):
            parse_metric(bad)
    with pytest.raises(ValueError, match="no relevant item"):
        hit_metrics(np.ones((2, 3), bool), np.array([1, 0]), ["Recall@1"])
    with pytest.raises(ValueError, match=r"expected \[B, K\]"):
        hit_metrics(np.ones((2, 3), bool), np.array([1, 1, 1]), ["Recall@1"])

"""RankingEvaluator against a slow reference and PyG's LinkPred* metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.metrics import LinkPredMAP, LinkPredNDCG, LinkPredPrecision, LinkPredRecall

from emmkgr_pyg.eval.ranking import METRICS, RankingEvaluator
from emmkgr_pyg.graph.interaction import InteractionGraph

N_USERS, N_ITEMS = 30, 40
KS = (1, 3, 5, 10, 50)  # 50 > N_ITEMS: fewer candidates than k


def make_case(seed: int = 0):
    """Users 0-21 have training and held-out items (user 0: 12 held-out, user 1: 20); users 22-27
    have no held-out item; users 28-29 have held-out items but no training item."""
    rng = np.random.default_rng(seed)
    train_u, train_i, held_u, held_i = [], [], [], []
    for u in range(N_USERS):
        perm = rng.permutation(N_ITEMS)
        n_train = 0 if u >= 28 else int(rng.integers(3, 11))
        n_held = {0: 12, 1: 20}.get(u, int(rng.integers(1, 6))) if (u < 22 or u >= 28) else 0
        train_u += [u] * n_train
        train_i += perm[:n_train].tolist()
        held_u += [u] * n_held
        held_i += perm[n_train : n_train + n_held].tolist()
    train = InteractionGraph(N_USERS, N_ITEMS, torch.tensor(train_u), torch.tensor(train_i))
    scores = torch.from_numpy(rng.normal(size=(N_USERS, N_ITEMS)).astype(np.float32))
    return train, np.array(held_u), np.array(held_i), scores


def reference(train, held_u, held_i, scores, ks):
    """Python loops: rank all items, drop training items, the module docstring's formulas."""
    train_items = {u: set() for u in range(N_USERS)}
    for u, i in zip(train.user.tolist(), train.item.tolist(), strict=True):
        train_items[u].add(i)
    held = {}
    for u, i in zip(held_u.tolist(), held_i.tolist(), strict=True):
        held.setdefault(u, set()).add(i)
    sums = {f"{m}@{k}": 0.0 for m in METRICS for k in ks}
    n = 0
    for u in sorted(held):
        if not train_items[u]:
            continue
        n += 1
        ranked = sorted(
            (i for i in range(N_ITEMS) if i not in train_items[u]), key=lambda i: -scores[u, i].item()
        )
        truth = held[u]
        for k in ks:
            h = [1.0 if i in truth else 0.0 for i in ranked[:k]]
            sums[f"Recall@{k}"] += sum(h) / len(truth)
            sums[f"Precision@{k}"] += sum(h) / k
            dcg = sum(x / math.log2(r + 2) for r, x in enumerate(h))
            idcg = sum(1 / math.log2(r + 2) for r in range(min(len(truth), k)))
            sums[f"NDCG@{k}"] += dcg / idcg
            ap = sum(h[r] * sum(h[: r + 1]) / (r + 1) for r in range(len(h)))
            sums[f"MAP@{k}"] += ap / min(len(truth), k)
    return {key: v / n for key, v in sums.items()}, n


@pytest.fixture(scope="module")
def case():
    return make_case()


@pytest.mark.parametrize("batch_size", [1024, 7, 1])
def test_matches_slow_reference(case, batch_size):
    train, held_u, held_i, scores = case
    ev = RankingEvaluator(train, held_u, held_i, ks=KS, batch_size=batch_size)
    got = ev.evaluate(lambda users: scores[users])
    expected, n = reference(train, held_u, held_i, scores, KS)
    assert ev.num_users == n == 22
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_batch_size_gives_identical_results(case):
    train, held_u, held_i, scores = case
    fn = lambda users: scores[users]
    big = RankingEvaluator(train, held_u, held_i, ks=KS, batch_size=1024).evaluate(fn)
    small = RankingEvaluator(train, held_u, held_i, ks=KS, batch_size=5).evaluate(fn)
    assert big.keys() == small.keys()
    for key in big:
        assert big[key] == pytest.approx(small[key], abs=1e-12), key


def test_skipped_users_and_input_forms(case):
    train, held_u, held_i, scores = case
    ev = RankingEvaluator(train, held_u, held_i, ks=(5,))
    assert ev.users.tolist() == list(range(22))  # 22-27: nothing held out; 28-29: no training
    asked = []

    def fn(users):
        asked.append(users.clone())
        return scores[users]

    ev.evaluate(fn)
    assert torch.cat(asked).tolist() == list(range(22))
    as_tensors = RankingEvaluator(train, torch.from_numpy(held_u), torch.from_numpy(held_i), ks=(5,))
    assert as_tensors.evaluate(fn) == ev.evaluate(fn)


def test_keys_prefix_and_hits_shape(case):
    train, held_u, held_i, scores = case
    ev = RankingEvaluator(train, held_u, held_i, ks=(10, 5))
    assert ev.ks == (5, 10)
    out = ev.evaluate(lambda users: scores[users], prefix="valid/")
    assert list(out) == [f"valid/{m}@{k}" for m in METRICS for k in (5, 10)]
    hit, n_true = ev.hits(lambda users: scores[users], torch.tensor([0, 1, 2]))
    assert hit.shape == (3, 10) and hit.dtype == torch.bool
    assert n_true.tolist()[:2] == [12, 20]


def test_scores_of_the_caller_are_not_modified(case):
    # a scorer may return a view of a score table (here: rows of contiguous users); masking the
    # training items must not write -inf into the caller's table
    train, held_u, held_i, scores = case
    table = scores.clone()
    ev = RankingEvaluator(train, held_u, held_i, ks=KS, batch_size=8)
    first = ev.evaluate(lambda users: table[int(users[0]) : int(users[-1]) + 1])
    assert torch.equal(table, scores)
    assert ev.evaluate(lambda users: scores[users]) == first


def test_perfect_scores_give_perfect_metrics(case):
    train, held_u, held_i, _ = case
    perfect = torch.zeros(N_USERS, N_ITEMS)
    perfect[torch.from_numpy(held_u), torch.from_numpy(held_i)] = 1.0
    perfect[train.user, train.item] = 2.0  # training items rank first unless masked
    out = RankingEvaluator(train, held_u, held_i, ks=(50,)).evaluate(lambda users: perfect[users])
    assert out["Recall@50"] == pytest.approx(1.0)
    assert out["NDCG@50"] == pytest.approx(1.0)
    assert out["MAP@50"] == pytest.approx(1.0)


def test_matches_pyg_link_pred_metrics(case):
    # All four PyG metrics define the quantity the module docstring gives:
    # - LinkPredRecall: hits@k / |R_u|;  LinkPredPrecision: hits@k / k (also when fewer than k
    #   items can be ranked, as here for k = 50 > 40 items);
    # - LinkPredNDCG (unweighted): IDCG over min(|R_u|, k) ideal positions;
    # - LinkPredMAP: sum_r h_r Precision@r / min(|R_u|, k).
    # What differs is around them: PyG scores a given `pred_index_mat` (masking training items is
    # the caller's job, done here as the evaluator does), averages over every row that has a
    # label (the evaluator also drops users without training items, so only evaluated users are
    # passed), and works in float32 (hence the tolerance). The weighted variants
    # (`weighted=True`: graded relevance) have no counterpart and are not compared.
    train, held_u, held_i, scores = case
    ev = RankingEvaluator(train, held_u, held_i, ks=KS)
    ours = ev.evaluate(lambda users: scores[users])
    users = ev.users
    row_of = {int(u): r for r, u in enumerate(users)}
    masked = scores[users].clone()
    for u, i in zip(train.user.tolist(), train.item.tolist(), strict=True):
        if u in row_of:
            masked[row_of[u], i] = -torch.inf
    pred = masked.topk(min(max(KS), N_ITEMS), dim=1).indices
    label = torch.tensor(
        [[row_of[u], i] for u, i in zip(held_u.tolist(), held_i.tolist(), strict=True) if u in row_of]
    ).t()
    for k in KS:
        for name, metric in (
            ("Recall", LinkPredRecall(k)),
            ("Precision", LinkPredPrecision(k)),
            ("NDCG", LinkPredNDCG(k)),
            ("MAP", LinkPredMAP(k)),
        ):
            metric.update(pred, label)
            assert float(metric.compute()) == pytest.approx(ours[f"{name}@{k}"], abs=1e-6), f"{name}@{k}"


@pytest.mark.parametrize("batch_size", [1024, 7])
def test_evaluate_many_shares_the_parts_and_matches_each_scorer_alone(case, batch_size):
    train, held_u, held_i, scores = case
    other = torch.from_numpy(np.random.default_rng(1).normal(size=(N_USERS, N_ITEMS)).astype(np.float32))
    ev = RankingEvaluator(train, held_u, held_i, ks=KS, batch_size=batch_size)
    calls = []

    def parts(users):
        calls.append(users.numel())
        return scores[users], other[users]

    mixes = {"a": (1.0, 0.0), "b": (0.0, 1.0), "mix": (1.0, 0.7)}
    scorers = {key: (lambda p, a=a, b=b: a * p[0] + b * p[1]) for key, (a, b) in mixes.items()}
    got = ev.evaluate_many(parts, scorers, prefix="v/")
    assert sum(calls) == ev.num_users  # each user's parts computed once, not once per scorer
    for key, (a, b) in mixes.items():
        alone = reference(train, held_u, held_i, a * scores + b * other, KS)[0]
        assert got[key] == pytest.approx({f"v/{k}": v for k, v in alone.items()})
    assert got["a"] != got["b"]

import numpy as np
import pytest

from emmkgr_pyg.search.feedback import feedback_scores, with_feedback


def _reference(scores, space, k):
    """Rocchio's positive feedback the obvious way: one query at a time, a loop over its items."""
    out = np.full(scores.shape, -np.inf)
    n = space.shape[0]
    unit = [v / np.linalg.norm(v) if np.linalg.norm(v) > 0 else v * 0 for v in space.astype(np.float64)]
    for b, row in enumerate(scores):
        ranked = sorted((j for j in range(n) if np.isfinite(row[j])), key=lambda j: (-row[j], j))[:k]
        if not ranked:
            continue
        c = sum(unit[j] for j in ranked) / len(ranked)
        c = c / np.linalg.norm(c)
        for i in range(n):
            out[b, i] = c @ unit[i]
    return out


def _rrf_reference(rankings, weights, k):
    out = np.zeros(rankings[0].shape)
    for s, w in zip(rankings, weights, strict=True):
        for b, row in enumerate(s):
            order = sorted((j for j in range(len(row)) if np.isfinite(row[j])), key=lambda j: (-row[j], j))
            for r, j in enumerate(order, 1):
                out[b, j] += w / (k + r)
    return out


@pytest.fixture
def case():
    rng = np.random.default_rng(3)
    space = rng.normal(size=(30, 6)).astype(np.float32)
    space[4] = 0  # an item without a vector in this space
    scores = rng.normal(size=(5, 30))
    scores[1, ::2] = -np.inf  # half the items unranked by the first stage
    scores[2, :] = -np.inf  # a query the first stage ranks nothing for
    return scores, space


@pytest.mark.parametrize("k", [1, 3, 10])
def test_feedback_scores_match_the_loop(case, k):
    scores, space = case
    got = feedback_scores(scores, space, k)
    want = _reference(scores, space, k)
    assert np.array_equal(np.isneginf(got), np.isneginf(want))
    assert np.isneginf(got[2]).all()
    fin = np.isfinite(want)
    assert got[fin] == pytest.approx(want[fin], abs=1e-5)
    assert got[0, 4] == 0.0  # a zero row scores 0


def test_feedback_averages_only_ranked_items():
    space = np.eye(4, dtype=np.float32)
    scores = np.array([[5.0, -np.inf, -np.inf, -np.inf]])
    # k = 3 but one item is ranked: the centroid is that item alone
    assert feedback_scores(scores, space, 3)[0] == pytest.approx([1, 0, 0, 0])


def test_cold_start_columns_beyond_the_space_are_left_to_the_first_stage(case):
    scores, space = case
    wide = np.concatenate([scores, np.full((5, 2), 9.0)], 1)  # two index items the space lacks
    got = feedback_scores(wide, space, 3)
    assert np.isneginf(got[:, 30:]).all()
    fused = with_feedback(lambda b: wide, space, 3, 1.0, 60)(None)
    assert (fused[:, 30:] > 0).all()


@pytest.mark.parametrize("weight", [0.5, 2.0])
def test_with_feedback_is_the_weighted_rrf_of_both_rankings(case, weight):
    scores, space = case
    got = with_feedback(lambda b: scores, space, k=4, weight=weight, rrf_k=10)(None)
    want = _rrf_reference([scores, _reference(scores, space, 4)], [1.0, weight], 10)
    assert got == pytest.approx(want, abs=1e-12)


def test_feedback_pulls_in_the_first_results_neighbours():
    # items 0-2 form one group, 3-5 another; the first stage ranks 0 and 1 first but misses 2
    space = np.array([[1, 0.1], [1, 0.0], [1, -0.1], [0, 1], [0.1, 1], [-0.1, 1]], dtype=np.float32)
    scores = np.array([[0.9, 0.8, 0.1, 0.5, 0.4, 0.3]])
    fused = with_feedback(lambda b: scores, space, k=2, weight=2.0, rrf_k=1)(None)
    assert list(np.argsort(-scores[0], kind="stable")).index(2) == 5  # last before feedback
    assert set(np.argsort(-fused[0], kind="stable")[:3]) == {0, 1, 2}


def test_bad_settings_name_the_fix(case):
    scores, space = case
    with pytest.raises(ValueError, match="feedback_k=0"):
        feedback_scores(scores, space, 0)
    with pytest.raises(ValueError, match="feedback_k=2.5"):
        with_feedback(lambda b: scores, space, 2.5)
    with pytest.raises(ValueError, match="feedback_k=abc: average at least one"):
        with_feedback(lambda b: scores, space, "abc")
    with pytest.raises(ValueError, match="feedback_weight=0.0"):
        with_feedback(lambda b: scores, space, 3, 0.0)


@pytest.mark.parametrize("keep", [1, 2])
def test_keep_holds_the_first_results_on_top_and_ranks_the_rest_by_the_fusion(case, keep):
    scores, space = case
    got = with_feedback(lambda b: scores, space, k=3, weight=2.0, rrf_k=10, keep=keep)(None)
    fused = _rrf_reference([scores, _reference(scores, space, 3)], [1.0, 2.0], 10)
    for b in range(len(scores)):
        first = sorted((j for j in range(30) if np.isfinite(scores[b, j])), key=lambda j: (-scores[b, j], j))
        held = first[:keep]
        rest = sorted((j for j in range(30) if j not in held), key=lambda j: (-fused[b, j], j))
        assert list(np.argsort(-got[b], kind="stable")) == held + rest, b
        assert got[b, rest] == pytest.approx(fused[b, rest])  # the others keep their fused scores
    with pytest.raises(ValueError, match="feedback_keep=-1"):
        with_feedback(lambda b: scores, space, 3, keep=-1)

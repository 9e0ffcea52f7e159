import numpy as np
import pytest

from emmkgr_pyg.search.fusion import ranks, rrf

NEG = -np.inf
# two rankings of five items for two queries; -inf: the ranking leaves the item out
A = np.array([[0.9, 0.1, 0.5, NEG, 0.3], [0.2, 0.8, NEG, 0.6, 0.4]])
B = np.array([[0.1, 0.7, 0.9, 0.3, NEG], [0.5, NEG, 0.9, 0.1, 0.7]])


def test_ranks_count_from_one_and_skip_left_out_items():
    np.testing.assert_array_equal(ranks(A), [[1, 4, 2, 0, 3], [4, 1, 0, 2, 3]])
    # ties by position
    np.testing.assert_array_equal(ranks(np.array([[1.0, 2.0, 1.0]])), [[2, 1, 3]])


def test_rrf_by_hand():
    got = rrf([A, B], k=60)
    # query 0: item 0 is rank 1 in A and rank 4 in B; item 3 is only in B (rank 3)
    assert got[0, 0] == pytest.approx(1 / 61 + 1 / 64)
    assert got[0, 3] == pytest.approx(1 / 63)
    assert got[1, 2] == pytest.approx(1 / 61)
    weighted = rrf([A, B], k=1, weights=[2.0, 0.5])
    assert weighted[0, 2] == pytest.approx(2 / 3 + 0.5 / 2)
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        rrf([A], weights=[1, 1])
    with pytest.raises(ValueError, match="shapes"):
        rrf([A, B[:, :3]])


def test_rrf_matches_ranx_fuse_on_hand_made_rankings():
    import ranx  # an independent implementation (the dev extra installs it)

    def run(scores):
        return ranx.Run(
            {
                f"q{q}": {f"d{i}": float(s) for i, s in enumerate(row) if np.isfinite(s)}
                for q, row in enumerate(scores)
            }
        )

    fused = ranx.fuse(runs=[run(A), run(B)], method="rrf", params={"k": 60})
    ours = rrf([A, B], k=60)
    for q in range(len(A)):
        theirs = fused[f"q{q}"]
        assert set(theirs) == {f"d{i}" for i in range(A.shape[1]) if ours[q, i] > 0}
        for doc, value in theirs.items():
            assert ours[q, int(doc[1:])] == pytest.approx(value, abs=1e-12), (q, doc)


def test_is_weight_takes_positive_numbers_only():
    from emmkgr_pyg.search.fusion import is_weight

    assert all(is_weight(x) for x in (1, 0.25, np.float32(2.0), np.int64(3)))
    assert not any(is_weight(x) for x in (0, -1.0, "0.5", True, None, float("nan")))

import numpy as np
import pytest

from emmkgr_pyg.search.fusion import ranks, rrf

NEG = -np.inf
# two rankings of five items for two queries; -inf: the ranking leaves the item out
A = np.array([[0.9, 0.1, 0.5, NEG, 0.3], [0.2, 0.8, NEG, 0.6, 0.4]])
B = np.array([[0.1, 0.7, 0.9, 0.3, NEG], [0.5, NEG, 0.9, 0.1, 0.7]])


def _ranx_run(scores):
    """Score rows as a ranx Run: query q, document d<i>, only the items the row scores."""
    import ranx  # an independent implementation (the dev extra installs it)

    return ranx.Run(
        {
            f"q{q}": {f"d{i}": float(s) for i, s in enumerate(row) if np.isfinite(s)}
            for q, row in enumerate(scores)
        }
    )


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

    fused = ranx.fuse(runs=[_ranx_run(A), _ranx_run(B)], method="rrf", params={"k": 60})
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


def test_zscore_by_hand():
    from emmkgr_pyg.search.fusion import zscore

    got = zscore([A, B], weights=[2.0, 0.5])
    # query 0: A scores items 0, 1, 2, 4 (item 3 left out), B items 0-3
    a = np.array([0.9, 0.1, 0.5, 0.3])
    b = np.array([0.1, 0.7, 0.9, 0.3])
    za = (a - a.mean()) / a.std()
    zb = (b - b.mean()) / b.std()
    assert got[0, 0] == pytest.approx(2 * za[0] + 0.5 * zb[0], abs=1e-12)
    assert got[0, 3] == pytest.approx(0.5 * zb[3], abs=1e-12)  # nothing from A
    assert got[0, 4] == pytest.approx(2 * za[3], abs=1e-12)  # nothing from B
    # a flat ranking adds nothing (its deviation is floored, as in ranx); an item no ranking scores stays -inf
    flat = np.array([[1.0, 1.0, 1.0, NEG]])
    np.testing.assert_array_equal(zscore([flat, flat]), [[0.0, 0.0, 0.0, NEG]])
    # unlike RRF it keeps how far a score stands out: the same ranks, a far outlier in A wins
    close = np.linspace(3.0, 0.0, 20)[None]  # item 0 first, evenly spaced
    far = close.copy()
    far[0, 0] = 30.0  # item 0 first by far
    other = close[:, [4, 0, 1, 2, 3, *range(5, 20)]]  # item 1 first, item 0 fifth
    assert np.argmax(zscore([close, other])) == 1 and np.argmax(zscore([far, other])) == 0
    np.testing.assert_array_equal(ranks(rrf([close, other])), ranks(rrf([far, other])))
    assert ranks(rrf([far, other]))[0, 1] == 1  # RRF answers item 1 either way
    with pytest.raises(ValueError, match="zscore: 1 weights for 2 rankings"):
        zscore([A, B], weights=[1])


def test_zscore_matches_ranx_zmuv_wsum_on_hand_made_rankings():
    import ranx

    from emmkgr_pyg.search.fusion import fuse

    fused = ranx.fuse(
        runs=[_ranx_run(A), _ranx_run(B)], norm="zmuv", method="wsum", params={"weights": [0.3, 1.0]}
    )
    ours = fuse("zscore", [A, B], weights=[0.3, 1.0])
    for q in range(len(A)):
        assert set(fused[f"q{q}"]) == {f"d{i}" for i in range(A.shape[1]) if np.isfinite(ours[q, i])}
        for doc, value in fused[f"q{q}"].items():
            assert ours[q, int(doc[1:])] == pytest.approx(value, abs=1e-9), (q, doc)
    np.testing.assert_array_equal(fuse("rrf", [A, B], k=10), rrf([A, B], k=10))
    with pytest.raises(ValueError, match=r"fusion=max: choose one of \['rrf', 'zscore'\]"):
        fuse("max", [A, B])

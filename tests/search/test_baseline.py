import numpy as np
import pytest

from emmkgr_pyg.search import SearchError, VectorBaseline


def test_vector_baseline_ranks_by_the_best_single_modality_match():
    rng = np.random.default_rng(0)
    n = 20
    cover = {"title": np.arange(n), "description": np.arange(0, n, 2)}  # odd items lack it
    cover["title"] = np.arange(1, n)  # item 0 has only a description
    feats = {m: rng.normal(size=(len(ix), 6)) for m, ix in cover.items()}
    base = VectorBaseline(feats, cover, n + 1)  # item n has no modality at all
    q = {m: rng.normal(size=(3, 6)) for m in cover}
    got = base.scores(q)
    want = np.full((3, n + 1), -np.inf)
    for m, ix in cover.items():
        for r in range(3):
            for row, i in enumerate(ix):
                a, b = q[m][r], feats[m][row]
                want[r, i] = max(want[r, i], a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    scores, pos = base.search(q, n + 1)
    assert (pos[:, -1] == -1).all() and set(pos[0, :-1]) == set(range(n))
    allowed = np.zeros(n + 1, dtype=bool)
    allowed[[0, 5, 6]] = True
    scores, pos = base.search(q, 2, allowed)
    assert np.isin(pos, [0, 5, 6]).all()
    with pytest.raises(SearchError, match="unknown modality"):
        base.scores({"image": np.ones((1, 6))})

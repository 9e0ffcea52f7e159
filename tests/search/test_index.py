import numpy as np
import pytest

from emmkgr_pyg.search import INDEX_FILE, META_FILE, ItemFilter, ItemIndex, SearchError


def _brute(x, q, k, allowed=None):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    s = qn @ xn.T
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, top, 1), top


@pytest.fixture
def vectors():
    return np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_search_is_cosine_top_k(vectors, kind, item_meta):
    index = ItemIndex(vectors, item_meta(60), kind=kind)
    q = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    scores, pos = index.search(q, 10)
    want_s, want_p = _brute(vectors, q, 10)
    np.testing.assert_array_equal(pos, want_p)
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-6)


def test_scores_are_the_full_cosine_matrix(vectors, item_meta):
    index = ItemIndex(vectors, item_meta(60))
    q = np.random.default_rng(1).normal(size=(3, 8))
    xn = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(index.scores(q), qn @ xn.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_filters_apply_inside_the_search_so_top_k_stays_full(vectors, kind, item_meta):
    meta = item_meta(60)
    index = ItemIndex(vectors, meta, kind=kind, ef_search=4)  # a narrow HNSW search misses items
    q = np.random.default_rng(2).normal(size=(4, 8)).astype(np.float32)
    allowed = ItemFilter(category="writing", brand="acme").mask(meta)
    assert 5 < allowed.sum() < 20
    scores, pos = index.search(q, 5, allowed)
    assert (pos >= 0).all() and allowed[pos].all()
    want_s, want_p = _brute(vectors, q, 5, allowed)
    np.testing.assert_array_equal(pos, want_p)
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-6)


def test_fewer_passing_items_than_top_k_are_padded(vectors, item_meta):
    meta = item_meta(60)
    index = ItemIndex(vectors, meta)
    allowed = np.zeros(60, dtype=bool)
    allowed[[3, 7, 11]] = True
    scores, pos = index.search(vectors[:1], 5, allowed)
    assert sorted(pos[0, :3]) == [3, 7, 11] and (pos[0, 3:] == -1).all() and np.isinf(scores[0, 3:]).all()
    assert len(index.results(scores[0], pos[0])) == 3
    scores, pos = index.search(vectors[:1], 5, np.zeros(60, dtype=bool))
    assert (pos == -1).all()
    scores, pos = index.search(vectors[:1], 100)
    assert (pos[0, :60] >= 0).all() and (pos[0, 60:] == -1).all()
    with pytest.raises(SearchError, match="top_k=0"):
        index.search(vectors[:1], 0)


def test_save_load_round_trip_keeps_added_items(vectors, tmp_path, item_meta):
    index = ItemIndex(vectors[:50], item_meta(50), embedding="H_mm_item")
    pos = index.add(vectors[50:52], ["new-a", "new-b"], ["A", "B"], ["Acme", None], [["Office"], []])
    assert pos.tolist() == [50, 51] and index.n_items == 52 and index.n_base == 50
    index.save(tmp_path)
    assert (tmp_path / INDEX_FILE).is_file() and (tmp_path / META_FILE).is_file()
    loaded = ItemIndex.load(tmp_path)
    assert loaded.n_items == 52 and loaded.n_base == 50 and loaded.meta.position("new-b") == 51
    assert loaded.fingerprint == index.fingerprint and loaded.embedding == "H_mm_item"
    q = vectors[:3]
    np.testing.assert_array_equal(loaded.search(q, 7)[1], index.search(q, 7)[1])
    with pytest.raises(SearchError, match="already in the index"):
        loaded.add(vectors[:1], ["new-a"])
    with pytest.raises(SearchError, match=r"expected \[1, 8\]"):
        loaded.add(np.ones((1, 3)), ["x"])


def test_hnsw_misses_under_a_selective_filter_are_answered_exactly(item_meta):
    n = 3000
    x = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
    index = ItemIndex(x, item_meta(n), kind="hnsw", ef_search=4)  # alone, HNSW returns -1s here
    allowed = np.zeros(n, dtype=bool)
    allowed[np.random.default_rng(1).choice(n, 8, replace=False)] = True
    q = np.random.default_rng(2).normal(size=(20, 16)).astype(np.float32)
    scores, pos = index.search(q, 5, allowed)
    want_s, want_p = _brute(x, q, 5, allowed)
    np.testing.assert_array_equal(pos, want_p)
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-6)

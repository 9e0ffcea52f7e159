import numpy as np
import pytest
import torch

from emmkgr_pyg.search.index import (
    INDEX_FILE,
    META_FILE,
    ItemFilter,
    ItemIndex,
    ItemMeta,
    SearchError,
    VectorBaseline,
    open_index,
    run_embeddings,
)


def _meta(n):
    return ItemMeta(
        [f"i{i}" for i in range(n)],
        [f"title {i}" for i in range(n)],
        [None if i % 5 == 0 else ("Acme Corp" if i % 2 else "Zenith") for i in range(n)],
        [["Office Products", "Paper" if i % 3 else "Writing Instruments", f"leaf {i % 4}"] for i in range(n)],
    )


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
def test_search_is_cosine_top_k(vectors, kind):
    index = ItemIndex(vectors, _meta(60), kind=kind)
    q = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    scores, pos = index.search(q, 10)
    want_s, want_p = _brute(vectors, q, 10)
    np.testing.assert_array_equal(pos, want_p)
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-6)


def test_scores_are_the_full_cosine_matrix(vectors):
    index = ItemIndex(vectors, _meta(60))
    q = np.random.default_rng(1).normal(size=(3, 8))
    xn = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(index.scores(q), qn @ xn.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_filters_apply_inside_the_search_so_top_k_stays_full(vectors, kind):
    meta = _meta(60)
    index = ItemIndex(vectors, meta, kind=kind, ef_search=4)  # a narrow HNSW search misses items
    q = np.random.default_rng(2).normal(size=(4, 8)).astype(np.float32)
    allowed = ItemFilter(category="writing", brand="acme").mask(meta)
    assert 5 < allowed.sum() < 20
    scores, pos = index.search(q, 5, allowed)
    assert (pos >= 0).all() and allowed[pos].all()
    want_s, want_p = _brute(vectors, q, 5, allowed)
    np.testing.assert_array_equal(pos, want_p)
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-6)


def test_fewer_passing_items_than_top_k_are_padded(vectors):
    meta = _meta(60)
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


def test_item_filter_is_case_insensitive_and_anded():
    meta = _meta(12)
    cat = ItemFilter(category="WRITING").mask(meta)
    assert cat.tolist() == [i % 3 == 0 for i in range(12)]
    assert ItemFilter(category="office products > paper").mask(meta).tolist() == [
        i % 3 != 0 for i in range(12)
    ]
    brand = ItemFilter(brand="acme").mask(meta)
    assert brand.tolist() == [i % 5 != 0 and i % 2 == 1 for i in range(12)]  # no brand never passes
    assert (ItemFilter(category="writing", brand="acme").mask(meta) == (cat & brand)).all()
    assert not ItemFilter().active and ItemFilter().mask(meta).all()


def test_save_load_round_trip_keeps_added_items(vectors, tmp_path):
    index = ItemIndex(vectors[:50], _meta(50), embedding="H_mm_item")
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


def _fake_run(folder, vectors):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"H_mm_item": torch.from_numpy(vectors), "item": torch.from_numpy(vectors[::-1].copy())},
        folder / "embeddings.pt",
    )
    return folder


def test_open_index_reuses_the_saved_index_only_for_the_same_embeddings(vectors, tmp_path):
    run = _fake_run(tmp_path / "run", vectors)
    built = open_index(run, lambda: _meta(60))
    assert (run / INDEX_FILE).is_file()

    def no_meta():
        raise AssertionError("the saved index should have been loaded")

    assert open_index(run, no_meta).fingerprint == built.fingerprint
    calls = []
    other = open_index(run, lambda: calls.append(1) or _meta(60), embedding="item")
    assert calls and other.embedding == "item"
    open_index(run, lambda: calls.append(2) or _meta(60), embedding="item", rebuild=True)
    assert calls == [1, 2]


def test_run_embeddings_errors_name_the_fix(vectors, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a trained run"):
        run_embeddings(tmp_path)
    run = _fake_run(tmp_path / "run", vectors)
    with pytest.raises(SearchError, match="search.embedding=H_mm_title: choose"):
        run_embeddings(run, "H_mm_title")


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


def test_an_embedding_the_run_lacks_names_what_it_has(tmp_path):
    (tmp_path / "run").mkdir()
    torch.save({"item": torch.ones(3, 2), "user": torch.ones(4, 2)}, tmp_path / "run" / "embeddings.pt")
    with pytest.raises(SearchError, match=r"has \['item', 'user'\].*model=emmkgr"):
        run_embeddings(tmp_path / "run", "H_mm_item")


def test_hnsw_misses_under_a_selective_filter_are_answered_exactly():
    n = 3000
    x = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
    index = ItemIndex(x, _meta(n), kind="hnsw", ef_search=4)  # alone, HNSW returns -1s here
    allowed = np.zeros(n, dtype=bool)
    allowed[np.random.default_rng(1).choice(n, 8, replace=False)] = True
    q = np.random.default_rng(2).normal(size=(20, 16)).astype(np.float32)
    scores, pos = index.search(q, 5, allowed)
    want_s, want_p = _brute(x, q, 5, allowed)
    np.testing.assert_array_equal(pos, want_p)
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-6)

"""KNNBuilder against a brute-force numpy cosine top-n (Eq. 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emmkgr_pyg.graph import knn as knn_module
from emmkgr_pyg.graph.knn import KNNBuilder, _drop_self, normalize_rows, symmetrize
from emmkgr_pyg.utils import save_npy


def brute_force(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours the obvious way: every pair, self excluded, ties by smaller index."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    sim = (x @ x.T) / np.maximum(np.outer(norms, norms), 1e-300)
    n = len(x)
    k = min(k, n - 1)
    nbr = np.zeros((n, k), dtype=np.int64)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        others.sort(key=lambda j: (-sim[i, j], j))
        nbr[i] = others[:k]
    return nbr, np.take_along_axis(sim, nbr, 1)


def tied_features(seed: int = 0) -> np.ndarray:
    """Rows with exact cosine ties: duplicates and power-of-two rescalings (exact in float)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(6, 8)).astype(np.float32)
    x = np.concatenate([base, base[[1, 1, 3]], 2 * base[[0]], 4 * base[[1]]])
    return x[rng.permutation(len(x))]


def clustered(n: int = 2000, dim: int = 32, n_clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, dim))
    x = centers[rng.integers(n_clusters, size=n)] + 0.3 * rng.normal(size=(n, dim))
    return x.astype(np.float32)


def test_normalize_rows_unit_rows_zero_rows_stay_zero():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    out = normalize_rows(x)
    assert out.dtype == np.float32 and out.shape == (3, 2)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]], atol=1e-7)
    np.testing.assert_array_equal(x, [[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])  # a copy
    np.testing.assert_allclose(normalize_rows([[1, 1]]), [[2**-0.5, 2**-0.5]], atol=1e-7)


@pytest.mark.parametrize("k", [1, 3, 10, 29])
def test_neighbors_equal_brute_force(k):
    x = np.random.default_rng(1).normal(size=(30, 7)).astype(np.float32)
    nbr, sim = KNNBuilder(progress=False).neighbors(x, k)
    ref_nbr, ref_sim = brute_force(x, k)
    assert nbr.shape == sim.shape == (30, k)
    assert nbr.dtype == np.int64 and sim.dtype == np.float32
    np.testing.assert_array_equal(nbr, ref_nbr)
    np.testing.assert_allclose(sim, ref_sim, atol=1e-5)
    assert not (nbr == np.arange(30)[:, None]).any()


def test_neighbors_small_batches_give_the_same_result():
    x = np.random.default_rng(2).normal(size=(25, 5)).astype(np.float32)
    full = KNNBuilder(progress=False).neighbors(x, 4)
    batched = KNNBuilder(batch_size=4, progress=False).neighbors(x, 4)
    np.testing.assert_array_equal(full[0], batched[0])
    np.testing.assert_allclose(full[1], batched[1])


def test_neighbors_ties_broken_by_smaller_index():
    x = tied_features()
    n = len(x)
    builder = KNNBuilder(progress=False)
    wrong = []
    for k in range(1, n):
        nbr, _ = builder.neighbors(x, k)
        ref, _ = brute_force(x, k)
        assert nbr.shape == ref.shape == (n, k)
        assert not (nbr == np.arange(n)[:, None]).any()
        wrong += [(k, i, nbr[i].tolist(), ref[i].tolist()) for i in np.where((nbr != ref).any(1))[0]]
    assert not wrong, f"(k, row, got, expected), ties not broken by smaller index: {wrong[:4]}"


def test_duplicate_rows_list_each_other_first():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    nbr, sim = KNNBuilder(progress=False).neighbors(x, 2)
    # rows 0, 2 and 3 point the same way: each lists the other two, smaller index first
    np.testing.assert_array_equal(nbr[[0, 2, 3]], [[2, 3], [0, 3], [0, 2]])
    np.testing.assert_allclose(sim[[0, 2, 3]], 1.0, atol=1e-6)


def test_ties_at_the_cut_off_go_to_the_smaller_index():
    # row 1 = (0, 1) is orthogonal to rows 0, 2, 3: its 2nd neighbour is a three-way tie (-> 0);
    # row 4 = (1, 1) is equally similar to all four others (-> 0, 1)
    x = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    nbr, _ = KNNBuilder(progress=False).neighbors(x, 2)
    np.testing.assert_array_equal(nbr, brute_force(x, 2)[0])
    np.testing.assert_array_equal(nbr[[1, 4]], [[4, 0], [0, 1]])


def test_k_at_least_n_lists_every_other_row():
    x = np.random.default_rng(3).normal(size=(5, 3))
    for k in (4, 5, 50):
        nbr, sim = KNNBuilder(progress=False).neighbors(x, k)
        assert nbr.shape == sim.shape == (5, 4)
        for i in range(5):
            assert sorted(nbr[i]) == sorted(set(range(5)) - {i})
        np.testing.assert_array_equal(nbr, brute_force(x, k)[0])
    edges = KNNBuilder(progress=False).edges(x, 50)
    assert edges.shape == (2, 20)


def test_single_row_and_k_zero_have_no_neighbours():
    builder = KNNBuilder(progress=False)
    nbr, sim = builder.neighbors(np.ones((1, 4)), 3)
    assert nbr.shape == sim.shape == (1, 0)
    assert builder.edges(np.ones((1, 4)), 3).shape == (2, 0)
    nbr, _ = builder.neighbors(np.eye(3), 0)
    assert nbr.shape == (3, 0)


def test_drop_self_removes_self_or_the_last_and_sorts_missing_last():
    nbr = np.array([[2, 0, 1], [0, 2, -1], [3, 2, 0]])
    sim = np.array([[0.5, 1.0, 0.5], [0.9, 0.9, -np.inf], [0.7, 1.0, 0.7]], dtype=np.float32)
    out, s = _drop_self(nbr, sim, 2)
    # row 0: self removed, tie 0.5 by index; row 1: self (1) absent -> the last (-1) dropped;
    # row 2: self removed, tie 0.7 by index
    np.testing.assert_array_equal(out, [[1, 2], [0, 2], [0, 3]])
    np.testing.assert_allclose(s, [[0.5, 0.5], [0.9, 0.9], [0.7, 0.7]])


def test_symmetrize_is_the_sorted_union_with_the_reverse():
    edge_index = np.array([[0, 0, 1, 2, 3], [1, 2, 0, 3, 1]])
    out = symmetrize(edge_index, 4)
    expected = sorted(
        {(int(s), int(d)) for s, d in edge_index.T} | {(int(d), int(s)) for s, d in edge_index.T}
    )
    np.testing.assert_array_equal(out, np.array(expected).T)


def test_edges_are_each_row_to_its_neighbours():
    x = np.random.default_rng(4).normal(size=(12, 6)).astype(np.float32)
    ref, _ = brute_force(x, 3)
    edges = KNNBuilder(progress=False).edges(x, 3)
    assert edges.shape == (2, 36) and edges.dtype == np.int64
    np.testing.assert_array_equal(edges[0], np.repeat(np.arange(12), 3))
    np.testing.assert_array_equal(edges[1], ref.reshape(-1))


def test_symmetric_edges_add_every_reverse_once():
    x = np.random.default_rng(5).normal(size=(12, 6)).astype(np.float32)
    directed = KNNBuilder(progress=False).edges(x, 3)
    sym = KNNBuilder(symmetric=True, progress=False).edges(x, 3)
    pairs = {(int(s), int(d)) for s, d in directed.T}
    expected = pairs | {(d, s) for s, d in pairs}
    assert {(int(s), int(d)) for s, d in sym.T} == expected
    assert sym.shape[1] == len(expected)  # no duplicates
    assert (sym[0] != sym[1]).all()


def test_edges_cache_is_reused(tmp_path, monkeypatch):
    x = np.random.default_rng(6).normal(size=(15, 4)).astype(np.float32)
    builder = KNNBuilder(cache_dir=str(tmp_path), progress=False)
    first = builder.edges(x, 3)
    files = list((tmp_path / "knn").glob("*.npy"))
    assert len(files) == 1
    np.testing.assert_array_equal(np.load(files[0]), first)

    def no_search(*args, **kwargs):
        raise AssertionError("neighbors() called although the edges are cached")

    monkeypatch.setattr(KNNBuilder, "neighbors", no_search)
    np.testing.assert_array_equal(KNNBuilder(cache_dir=str(tmp_path), progress=False).edges(x, 3), first)
    # another k, other features or other settings are other cache entries
    with pytest.raises(AssertionError, match="neighbors"):
        builder.edges(x, 4)
    with pytest.raises(AssertionError, match="neighbors"):
        builder.edges(x + 1.0, 3)
    with pytest.raises(AssertionError, match="neighbors"):
        KNNBuilder(cache_dir=str(tmp_path), symmetric=True, progress=False).edges(x, 3)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"",  # zero bytes
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:-8] + np.int64(0).tobytes(),  # one edge overwritten: only the checksum tells
    ],
    ids=["empty", "truncated", "overwritten"],
)
def test_damaged_edges_cache_is_rebuilt(tmp_path, caplog, damage):
    x = np.random.default_rng(6).normal(size=(15, 4)).astype(np.float32)
    first = KNNBuilder(cache_dir=str(tmp_path), progress=False).edges(x, 3)
    (npy,) = (tmp_path / "knn").glob("*.npy")
    assert len(json.loads(npy.with_suffix(".json").read_text())["sha256"]) == 64
    npy.write_bytes(damage(npy.read_bytes()))
    again = KNNBuilder(cache_dir=str(tmp_path), progress=False).edges(x, 3)
    np.testing.assert_array_equal(again, first)
    assert f"cache entry {npy} unreadable" in caplog.text and "rebuilding it" in caplog.text
    np.testing.assert_array_equal(np.load(npy), first)  # repaired on disk


def test_edges_cache_entry_of_the_wrong_shape_is_rebuilt(tmp_path, caplog):
    x = np.random.default_rng(6).normal(size=(15, 4)).astype(np.float32)
    builder = KNNBuilder(cache_dir=str(tmp_path), progress=False)
    first = builder.edges(x, 3)
    (npy,) = (tmp_path / "knn").glob("*.npy")
    # a consistent entry (file and manifest) that is not edges of 15 nodes
    digest = save_npy(npy, np.array([[0, 1], [2, 99]]))
    npy.with_suffix(".json").write_text(json.dumps({"sha256": digest}))
    np.testing.assert_array_equal(builder.edges(x, 3), first)
    assert "holds no edges of 15 nodes; rebuilding it" in caplog.text


@pytest.mark.parametrize("index", ["hnsw", "ivf", "pca"])
def test_approximate_indexes_recall_at_10(index):
    x = clustered()
    exact, _ = KNNBuilder(progress=False).neighbors(x, 10)
    nbr, sim = KNNBuilder(index=index, progress=False).neighbors(x, 10)
    assert nbr.shape == sim.shape == (2000, 10)
    assert not (nbr == np.arange(2000)[:, None]).any()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(nbr, exact, strict=True)])
    assert recall >= 0.9, f"{index} recall@10 = {recall:.3f}"
    edges = KNNBuilder(index=index, progress=False).edges(x, 10)
    assert edges.shape[0] == 2 and (edges >= 0).all() and (edges[0] != edges[1]).all()


@pytest.mark.parametrize("index", ["hnsw", "ivf"])
def test_approximate_indexes_search_once_however_many_ties(index, monkeypatch):
    # four directions, each repeated 30 times: each row's cut-off is a tie with many others (few
    # enough rows that HNSW's graph links every duplicate, so the result below is not left to luck)
    x = np.repeat(np.eye(4, dtype=np.float32), 30, axis=0)
    searched = []
    drop = knn_module._drop_self
    monkeypatch.setattr(knn_module, "_drop_self", lambda *a: searched.append(len(a[3])) or drop(*a))
    nbr, sim = KNNBuilder(index=index, ivf_nlist=4, progress=False).neighbors(x, 10)
    assert searched == [120]  # one pass over the rows, none widened
    np.testing.assert_allclose(sim, 1.0, atol=1e-6)  # the neighbours are still exact duplicates
    assert (nbr // 30 == np.arange(120)[:, None] // 30).all()
    searched.clear()
    exact, _ = KNNBuilder(progress=False).neighbors(x, 10)  # the exact index widens to the tie
    assert len(searched) > 1
    np.testing.assert_array_equal(exact, brute_force(x, 10)[0])


def test_exact_index_is_the_default_and_unknown_index_raises():
    assert KNNBuilder().index == "exact"
    assert knn_module.INDEX_TYPES == ("exact", "hnsw", "ivf", "pca")
    with pytest.raises(ValueError, match="index 'annoy' is not one of"):
        KNNBuilder(index="annoy")


def test_reduced_index_reranks_on_the_full_vectors():
    rng = np.random.default_rng(3)
    x = normalize_rows(rng.normal(size=(300, 40)).astype(np.float32))
    index = knn_module.ReducedIndex(x, dim=8, k_factor=3, sample=100)
    sim, nbr = index.search(x[:5], 4)
    # the returned similarities are the exact inner products of the returned ids, best first
    np.testing.assert_allclose(sim, np.einsum("bkd,bd->bk", x[nbr], x[:5]), rtol=1e-5, atol=1e-6)
    assert (np.diff(sim, axis=1) <= 1e-7).all()
    # with every candidate re-ranked (dim = d, k_factor covering N) it is exact search
    full = knn_module.ReducedIndex(x, dim=40, k_factor=100, sample=300)
    s2, n2 = full.search(x[:5], 4)
    ref = np.argsort(-(x[:5] @ x.T), axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(n2, ref)


def test_principal_basis_spans_the_top_singular_vectors():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(200, 3)) @ rng.normal(size=(3, 12)) + 1e-3 * rng.normal(size=(200, 12))).astype(
        np.float32
    )
    basis = knn_module.principal_basis(x, 3, sample=200)
    assert basis.shape == (12, 3)
    np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-4)  # orthonormal
    _, _, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
    # same subspace as the top 3 right singular vectors
    np.testing.assert_allclose(np.linalg.svd(vt[:3] @ basis)[1], 1.0, atol=1e-3)


def test_exact_search_goes_to_the_gpus_when_faiss_has_them(monkeypatch):
    moved = []

    def to_gpus(index):
        moved.append(index)
        return index  # the CPU index stands in for the GPU copy

    monkeypatch.setattr(knn_module.faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(knn_module.faiss, "index_cpu_to_all_gpus", to_gpus, raising=False)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    nbr, _ = KNNBuilder(progress=False).neighbors(x, 3)
    assert len(moved) == 1
    monkeypatch.setattr(knn_module.faiss, "get_num_gpus", lambda: 0, raising=False)
    again, _ = KNNBuilder(progress=False).neighbors(x, 3)
    assert len(moved) == 1 and np.array_equal(nbr, again)

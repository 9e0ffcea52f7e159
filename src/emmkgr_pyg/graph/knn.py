"""Top-n cosine neighbours with faiss (Eq. 2): exact by default, HNSW or IVF for large catalogues.

Vectors are L2-normalised, so inner product = cosine. Queries run in batches against one index, so
memory is the index (``O(N d)``) plus ``O(N n)`` results, never ``N x N``. A node never lists
itself; neighbours are ordered by similarity, ties by index, so the exact result is deterministic
(an approximate index breaks ties among the candidates it returned, and does not search wider for
tied ones).
Cached edges carry a manifest with the SHA-256 of their file: an unreadable or altered entry is
rebuilt.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm.auto import tqdm

from ..utils import load_checked_npy, save_npy, stable_hash, write_json

log = logging.getLogger(__name__)

INDEX_TYPES = ("exact", "hnsw", "ivf", "pca")


class KNNBuilder:
    """Builds top-n neighbour lists with faiss.

    Args:
        index: ``"exact"`` (``IndexFlatIP``), ``"hnsw"`` (``IndexHNSWFlat``), ``"ivf"``
            (``IndexIVFFlat``) or ``"pca"`` (exact search among the principal directions, then the
            ``pca_k_factor x k`` candidates re-ranked on the full vectors: the fastest for
            high-dimensional features such as 4096-d CNN vectors) (default ``"exact"``).
        batch_size: queries per search call (default ``16384``).
        symmetric: also add the reverse of every edge (default ``False``).
        hnsw_m: HNSW graph degree (default ``32``).
        ef_construction: HNSW build breadth (default ``80``).
        ef_search: HNSW search breadth (default ``64``).
        ivf_nlist: IVF cells; ``None`` = ``4 sqrt(N)``, at most ``N / 39`` (default ``None``).
        ivf_nprobe: IVF cells visited per query (default ``16``).
        pca_dim: dimensions kept by ``"pca"`` (default ``128``).
        pca_k_factor: candidates per neighbour re-ranked by ``"pca"`` (default ``3``).
        cache_dir: where edges are cached by a hash of features and settings (default: no cache).
        progress: show a progress bar over query batches (default ``True``).
    """

    def __init__(
        self,
        index: str = "exact",
        batch_size: int = 16384,
        symmetric: bool = False,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        ivf_nlist: int | None = None,
        ivf_nprobe: int = 16,
        pca_dim: int = 128,
        pca_k_factor: int = 3,
        cache_dir: str | None = None,
        progress: bool = True,
    ) -> None:
        if index not in INDEX_TYPES:
            raise ValueError(f"KNNBuilder: index '{index}' is not one of {INDEX_TYPES}.")
        self.index = index
        self.batch_size = batch_size
        self.symmetric = symmetric
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = ivf_nprobe
        self.pca_dim = pca_dim
        self.pca_k_factor = pca_k_factor
        self.cache_dir = cache_dir
        self.progress = progress

    def identity(self) -> dict[str, Any]:
        keys = (
            "index",
            "symmetric",
            "hnsw_m",
            "ef_construction",
            "ef_search",
            "ivf_nlist",
            "ivf_nprobe",
            "pca_dim",
            "pca_k_factor",
        )
        return {"v": 1, **{k: getattr(self, k) for k in keys}}

    def neighbors(self, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most cosine-similar other rows of each row.

        Returns:
            ``(neighbors, similarities)``, each ``[N, k']`` with ``k' = min(k, N - 1)``; neighbours in
            decreasing similarity, ties by increasing index (with an approximate ``index``, among
            the candidates the index returned).
        """
        x = normalize_rows(features)
        n = x.shape[0]
        k = min(k, n - 1)
        if k <= 0:
            return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
        index = self._make_index(x)
        kk = min(k + 2, n)  # self, the k neighbours, and one more to see a tie at the cut-off
        nbr = np.empty((n, kk), dtype=np.int64)
        sim = np.empty((n, kk), dtype=np.float32)
        starts = range(0, n, self.batch_size)
        for s in tqdm(starts, desc=f"kNN ({self.index})", disable=not self.progress or len(starts) < 2):
            sim[s : s + self.batch_size], nbr[s : s + self.batch_size] = index.search(
                x[s : s + self.batch_size], kk
            )
        rows = np.arange(n)
        out_nbr, out_sim = _drop_self(nbr, sim, k, rows)
        # a row whose last candidate ties its k-th neighbour may have tied candidates of smaller
        # index beyond what was returned: search those rows again, wider, until the tie is inside.
        # Exact search only: an approximate index promises no tied candidate anyway, and on text
        # whose cosines take few values (hashed or templated titles) ties are the rule: at 100k
        # generated items the widening searched 76% of the title rows again and some description
        # rows up to 768 wide (14% of the kNN time), at 300k the title took 120 s with it and 75 s
        # without (HNSW): the tied groups grow with N, so the widening grew faster than N
        widen = self.index == "exact" and kk < n
        todo = rows[sim[:, -1] >= out_sim[:, -1]] if widen else rows[:0]
        while len(todo):
            kk = min(2 * kk, n)
            s2, n2 = index.search(x[todo], kk)
            out_nbr[todo], out_sim[todo] = _drop_self(n2, s2, k, todo)
            todo = todo[s2[:, -1] >= out_sim[todo, -1]] if kk < n else todo[:0]
        return out_nbr, out_sim

    def edges(self, features: np.ndarray, k: int) -> np.ndarray:
        """Directed edges ``[2, E]`` from each row to its top-``k`` (both ways when symmetric),
        cached by a hash of the features and settings when ``cache_dir`` is set."""
        path = None
        if self.cache_dir:
            key = stable_hash(self.identity(), k, features)
            path = Path(self.cache_dir).expanduser() / "knn" / f"{key[:24]}.npy"
            cached = _cached_edges(path, len(features))
            if cached is not None:
                return cached
        nbr, _ = self.neighbors(features, k)
        n, kk = nbr.shape
        src = np.repeat(np.arange(n, dtype=np.int64), kk)
        dst = nbr.reshape(-1)
        valid = dst >= 0  # an approximate index may return fewer than k
        edge_index = np.stack([src[valid], dst[valid]])
        if self.symmetric:
            edge_index = symmetrize(edge_index, n)
        if path is not None:
            digest = save_npy(path, edge_index)
            write_json(path.with_suffix(".json"), {"shape": list(edge_index.shape), "sha256": digest})
        return edge_index

    def _make_index(self, x: np.ndarray) -> faiss.Index | ReducedIndex:
        n, d = x.shape
        if self.index == "pca":
            return ReducedIndex(x, self.pca_dim, self.pca_k_factor)
        if self.index == "exact":
            index = faiss.IndexFlatIP(d)
            if getattr(faiss, "get_num_gpus", lambda: 0)() > 0:  # faiss-gpu installed, a GPU present
                index = faiss.index_cpu_to_all_gpus(index)
        elif self.index == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            index.hnsw.efSearch = self.ef_search
        else:
            # 4 sqrt(N) cells, but at least the 39 training points per cell faiss asks for
            nlist = self.ivf_nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))
            nlist = min(nlist, n)
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = x[rng.choice(n, size=min(n, 256 * nlist), replace=False)]
            index.train(sample)
            index.nprobe = self.ivf_nprobe
        t0 = time.perf_counter()
        index.add(x)
        log.debug(
            "faiss %s index over %d x %d built in %.2f s",
            self.index,
            n,
            d,
            time.perf_counter() - t0,
        )
        return index


def _cached_edges(path: Path, num_nodes: int) -> np.ndarray | None:
    """The cached ``[2, E]`` edges at ``path`` if they and their manifest are intact, else ``None``."""
    manifest = path.with_suffix(".json")
    if not (path.is_file() and manifest.is_file()):
        return None
    try:
        info = json.loads(manifest.read_text())
        sha256 = info.get("sha256") if isinstance(info, dict) else None
    except (OSError, ValueError):
        sha256 = None
    edges = load_checked_npy(path, sha256)
    if edges is None:
        return None
    if (
        edges.ndim != 2
        or edges.shape[0] != 2
        or (edges.size and not 0 <= edges.min() <= edges.max() < num_nodes)
    ):
        log.warning("kNN cache entry %s holds no edges of %d nodes; rebuilding it", path, num_nodes)
        return None
    return edges


def principal_basis(x: np.ndarray, dim: int, sample: int = 1024, seed: int = 0) -> np.ndarray:
    """The top ``dim`` principal directions (uncentred: right singular vectors) of ``x``, from a
    seeded sample of its rows via the sample's Gram matrix. Returns ``[d, min(dim, d, sample)]``."""
    rng = np.random.default_rng(seed)
    rows = np.asarray(
        x[np.sort(rng.choice(len(x), size=min(len(x), sample), replace=False))], dtype=np.float64
    )
    vals, vecs = np.linalg.eigh(rows @ rows.T)
    top = np.argsort(vals)[::-1][: min(dim, x.shape[1], len(rows))]
    basis = (rows.T @ vecs[:, top]) / np.sqrt(np.maximum(vals[top], 1e-12))
    return np.ascontiguousarray(basis, dtype=np.float32)


class ReducedIndex:
    """Exact inner-product search among the top principal directions of ``x`` (from a sample),
    then exact re-ranking of ``k_factor x kk`` candidates on the full vectors.

    Args:
        x: the (L2-normalised) vectors, ``[N, d]``.
        dim: principal directions kept.
        k_factor: candidates re-ranked per requested neighbour.
        sample: rows the directions are computed from (default ``1024``).
    """

    def __init__(self, x: np.ndarray, dim: int = 128, k_factor: int = 3, sample: int = 1024) -> None:
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.k_factor = k_factor
        self.basis = principal_basis(x, dim, sample)
        self.flat = faiss.IndexFlatIP(self.basis.shape[1])
        self.flat.add(np.ascontiguousarray(x @ self.basis))

    @property
    def ntotal(self) -> int:
        return self.flat.ntotal

    def search(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(q, dtype=np.float32)
        kc = min(self.k_factor * kk, self.ntotal)
        _, cand = self.flat.search(np.ascontiguousarray(q @ self.basis), kc)
        ids = np.ascontiguousarray(np.maximum(cand, 0))
        exact = np.empty(cand.shape, dtype=np.float32)
        # inner products with the candidates only, without gathering their vectors
        faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(exact),
            faiss.swig_ptr(q),
            faiss.swig_ptr(self.x),
            faiss.swig_ptr(ids),
            q.shape[1],
            len(q),
            kc,
        )
        exact[cand < 0] = -np.inf
        top = np.argsort(-exact, axis=1, kind="stable")[:, :kk]
        return np.take_along_axis(exact, top, 1), np.take_along_axis(cand, top, 1)


def normalize_rows(features: np.ndarray) -> np.ndarray:
    """A float32 copy with unit-length rows (zero rows stay zero)."""
    x = np.array(features, dtype=np.float32, copy=True, order="C")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.maximum(norms, 1e-12)
    return x


def _drop_self(
    nbr: np.ndarray, sim: np.ndarray, k: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Order each row by (similarity desc, index asc), drop the row's own id (``rows``, default
    ``0..n-1``), keep ``k``."""
    n = nbr.shape[0]
    rows = np.arange(n) if rows is None else rows
    # order by similarity, then index, so that ties are deterministic
    order = np.lexsort((np.where(nbr < 0, np.iinfo(np.int64).max, nbr), -sim), axis=-1)
    nbr = np.take_along_axis(nbr, order, 1)
    sim = np.take_along_axis(sim, order, 1)
    is_self = nbr == rows[:, None]
    # rows whose own index was not returned (ties with duplicates, approximate search) lose the last
    no_self = ~is_self.any(1)
    is_self[no_self, -1] = True
    keep = ~is_self
    nbr = nbr[keep].reshape(n, -1)[:, :k]
    sim = sim[keep].reshape(n, -1)[:, :k]
    return nbr, sim


def symmetrize(edge_index: np.ndarray, num_nodes: int) -> np.ndarray:
    """The union of ``edge_index`` and its reverse, without duplicates, sorted by (src, dst)."""
    both = np.concatenate([edge_index, edge_index[::-1]], axis=1)
    key = np.unique(both[0] * num_nodes + both[1])
    return np.stack([key // num_nodes, key % num_nodes])

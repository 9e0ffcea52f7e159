r"""The item index of product search (paper section 3.3, Eq. 7).

:class:`ItemIndex` is a faiss inner-product index over L2-normalised item embeddings, so that its
scores are cosine similarities,

.. math::
    \mathrm{sim}(\mathbf{h}_q, \mathbf{h}^{MM}_i) =
    \frac{\mathbf{h}_q \cdot \mathbf{h}^{MM}_i}{\|\mathbf{h}_q\| \, \|\mathbf{h}^{MM}_i\|},

saved into a folder (beside a trained run) as ``search_index.faiss`` with its metadata
(``search_index.json``: which embedding, a fingerprint of it, and the items' ids, titles, brands and
categories). Attribute filters (:class:`~.meta.ItemFilter`) are applied *inside* the search with a
faiss ``IDSelectorBitmap``, so ``top_k`` results come back whenever that many items pass the filter.
Which embeddings of a run can be indexed, and how a run's index is found again, is the runs
layer's business (:mod:`emmkgr_pyg.runs.search`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..graph.knn import normalize_rows
from ..utils import atomic_path, stable_hash, write_json
from .errors import SearchError
from .meta import ItemMeta
from .topk import pad_top_k, top_k

INDEX_FILE = "search_index.faiss"
META_FILE = "search_index.json"
INDEX_KINDS = ("exact", "hnsw")


class ItemIndex:
    """A faiss index over L2-normalised item embeddings (cosine = inner product).

    Args:
        vectors: item embeddings ``[N, d]`` (normalised here), row = item index.
        meta: the items' ids and metadata, one row per vector.
        embedding: the name of the indexed embedding, recorded in the metadata (a run's index
            names one of :data:`emmkgr_pyg.runs.artifacts.SEARCHABLE`: :math:`H^{MM}`, Eq. 7, or
            :math:`H_{item}`) (default ``None``: unnamed).
        kind: ``"exact"`` (``IndexFlatIP``) or ``"hnsw"`` (``IndexHNSWFlat``) (default ``"exact"``).
        hnsw_m: HNSW graph degree (default ``32``).
        ef_search: HNSW search breadth (default ``128``).
        n_base, fingerprint, index: set by :meth:`load`: the number of items before cold-start
            additions, a hash of their normalised vectors, the faiss index read from disk.

    Shapes:
        - :meth:`search`: queries ``[B, d]`` -> scores ``[B, k]``, positions ``[B, k]`` (``-1``
          where fewer than ``k`` items pass the filter)
    """

    def __init__(
        self,
        vectors: np.ndarray,
        meta: ItemMeta,
        embedding: str | None = None,
        kind: str = "exact",
        hnsw_m: int = 32,
        ef_search: int = 128,
        n_base: int | None = None,
        fingerprint: str | None = None,
        index: faiss.Index | None = None,
    ) -> None:
        if kind not in INDEX_KINDS:
            raise SearchError(f"search.index={kind}: choose one of {INDEX_KINDS}.")
        x = normalize_rows(vectors)
        if x.shape[0] != len(meta):
            raise SearchError(f"ItemIndex: {x.shape[0]} vectors for {len(meta)} items of metadata.")
        self.kind, self.hnsw_m, self.ef_search = kind, hnsw_m, ef_search
        self.embedding = embedding
        self.meta = meta
        self.n_base = x.shape[0] if n_base is None else n_base
        self.fingerprint = fingerprint or stable_hash(x[: self.n_base])
        self._x = x
        t0 = time.perf_counter()
        if index is None:
            index = self._empty(x.shape[1])
            index.add(x)
        self.index = index
        self.build_seconds = time.perf_counter() - t0

    def _empty(self, dim: int) -> faiss.Index:
        if self.kind == "exact":
            return faiss.IndexFlatIP(dim)
        index = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = self.ef_search
        return index

    @property
    def n_items(self) -> int:
        return self._x.shape[0]

    @property
    def dim(self) -> int:
        return self._x.shape[1]

    def vector(self, i: int) -> np.ndarray:
        """The normalised embedding of item position ``i``, ``[d]``."""
        return self._x[i]

    def add(
        self,
        vectors: np.ndarray,
        item_ids: Sequence[str],
        titles: Sequence[str | None] | None = None,
        brands: Sequence[str | None] | None = None,
        categories: Sequence[Sequence[str]] | None = None,
    ) -> np.ndarray:
        """Add items (cold start) without rebuilding; returns their positions."""
        x = normalize_rows(np.atleast_2d(vectors))
        if x.shape != (len(item_ids), self.dim):
            raise SearchError(
                f"ItemIndex.add: vectors of shape {x.shape} for {len(item_ids)} ids; expected "
                f"[{len(item_ids)}, {self.dim}]."
            )
        n = len(item_ids)
        taken = [x for x in item_ids if x in self.meta]
        if taken or len(set(map(str, item_ids))) < n:
            raise SearchError(
                f"item ids {taken or list(item_ids)} are already in the index (or repeated); "
                "give each new item a new id."
            )
        titles, brands = titles or [None] * n, brands or [None] * n
        categories = categories or [[] for _ in range(n)]
        pos = [self.meta.append(item_ids[j], titles[j], brands[j], categories[j]) for j in range(n)]
        self.index.add(x)
        self._x = np.concatenate([self._x, x])
        return np.asarray(pos, dtype=np.int64)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Cosine similarity of every query with every item, ``[B, N]`` (exact)."""
        return normalize_rows(np.atleast_2d(queries)) @ self._x.T

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items by cosine similarity, only among ``allowed`` items (a bool mask).

        The mask goes to faiss as an ``IDSelectorBitmap`` (the filter is applied during the search,
        not after it). HNSW may return fewer results than pass the filter when the filter is very
        selective; those queries are answered exactly over the allowed items instead.
        """
        q = normalize_rows(np.atleast_2d(queries))
        k = int(k)
        if k < 1:
            raise SearchError(f"top_k={k}: ask for at least one result.")
        k = min(k, self.n_items)  # never more rows than the catalogue (nor memory for them)
        if allowed is None or allowed.all():
            scores, pos = self.index.search(q, min(k, self.n_items), params=self._params(None))
            return pad_top_k(scores, pos, k)
        bitmap = np.packbits(allowed.astype(bool), bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        n_allowed = int(allowed.sum())
        kk = min(k, n_allowed)
        if kk == 0:
            return pad_top_k(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64), k)
        scores, pos = self.index.search(q, kk, params=self._params(selector))
        short = (pos[:, kk - 1] < 0).nonzero()[0]
        if len(short):  # approximate search missed some: exact over the allowed items
            cand = np.flatnonzero(allowed)
            sub = q[short] @ self._x[cand].T
            top = top_k(sub, kk)
            scores[short] = np.take_along_axis(sub, top, 1)
            pos[short] = cand[top]
        return pad_top_k(scores, pos, k)

    def _params(self, selector: faiss.IDSelector | None) -> faiss.SearchParameters:
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = self.ef_search
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def results(self, scores: np.ndarray, pos: np.ndarray) -> list[dict[str, Any]]:
        """One query's results as rows: rank, item id, title, brand, categories, score."""
        return [
            {"rank": r + 1, **self.meta.row(int(p)), "score": round(float(s), 6)}
            for r, (s, p) in enumerate(zip(scores, pos, strict=True))
            if p >= 0
        ]

    def save(self, folder: str | Path) -> Path:
        """Write ``search_index.faiss`` and ``search_index.json`` into ``folder`` (atomically)."""
        folder = Path(folder)
        with atomic_path(folder / INDEX_FILE) as tmp:
            faiss.write_index(self.index, str(tmp))
        write_json(
            folder / META_FILE,
            {
                "version": 1,
                "embedding": self.embedding,
                "kind": self.kind,
                "hnsw_m": self.hnsw_m,
                "ef_search": self.ef_search,
                "dim": self.dim,
                "n_items": self.n_items,
                "n_base": self.n_base,
                "fingerprint": self.fingerprint,
                "build_seconds": round(self.build_seconds, 4),
                "items": self.meta.to_json(),
            },
        )
        return folder / INDEX_FILE

    @classmethod
    def load(cls, folder: str | Path) -> ItemIndex:
        """Read an index written by :meth:`save`."""
        folder = Path(folder)
        ipath, mpath = folder / INDEX_FILE, folder / META_FILE
        if not (ipath.is_file() and mpath.is_file()):
            raise FileNotFoundError(
                f"{folder} has no search index ({INDEX_FILE} and {META_FILE}); build it with "
                f"`emmkgr-search run_dir={folder} query=...` (it is built on first use)."
            )
        info = json.loads(mpath.read_text())
        index = faiss.read_index(str(ipath))
        items = info["items"]
        meta = ItemMeta(items["item_ids"], items["title"], items["brand"], items["categories"])
        vectors = index.reconstruct_n(0, index.ntotal)
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = int(info["ef_search"])
        return cls(
            vectors,
            meta,
            embedding=info["embedding"],
            kind=info["kind"],
            hnsw_m=int(info["hnsw_m"]),
            ef_search=int(info["ef_search"]),
            n_base=int(info["n_base"]),
            fingerprint=info["fingerprint"],
            index=index,
        )

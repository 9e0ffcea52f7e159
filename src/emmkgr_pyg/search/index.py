r"""The item index of product search (paper section 3.3, Eq. 7) and the vector-based baseline.

:class:`ItemIndex` is a faiss inner-product index over L2-normalised item embeddings, so that its
scores are cosine similarities,

.. math::
    \mathrm{sim}(\mathbf{h}_q, \mathbf{h}^{MM}_i) =
    \frac{\mathbf{h}_q \cdot \mathbf{h}^{MM}_i}{\|\mathbf{h}_q\| \, \|\mathbf{h}^{MM}_i\|},

saved beside the trained run as ``search_index.faiss`` with its metadata (``search_index.json``:
which embedding, a fingerprint of it, and the items' ids, titles, brands and categories). Attribute
filters (:class:`ItemFilter`) are applied *inside* the search with a faiss ``IDSelectorBitmap``, so
``top_k`` results come back whenever that many items pass the filter.

:class:`VectorBaseline` is the paper's vector-based retrieval (section 4.1): the raw query
embedding against each modality's raw features independently, an item scored by its best
single-modality match,

.. math::
    s(q, i) = \max_{m \,:\, i \text{ has } m} \mathrm{sim}(f^{m}_{enc}(q), \hat{\mathbf{m}}_i).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..data.dataset import Catalog, MMDataset
from ..graph.knn import normalize_rows
from ..utils import atomic_path, stable_hash, write_json

log = logging.getLogger(__name__)

INDEX_FILE = "search_index.faiss"
META_FILE = "search_index.json"
INDEX_KINDS = ("exact", "hnsw")
#: item embeddings a trained run saves in ``embeddings.pt`` that search can index
EMBEDDINGS = ("H_mm_item", "item")


class SearchError(ValueError):
    """A search request that cannot be answered; the message names the field and the fix."""


@dataclass
class ItemMeta:
    """What a search result shows about each indexed item, row = position in the index."""

    item_ids: list[str]
    title: list[str | None]
    brand: list[str | None]
    categories: list[list[str]]
    _position: dict[str, int] = field(default_factory=dict, repr=False)
    _lower: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        for name in ("title", "brand", "categories"):
            if len(getattr(self, name)) != n:
                got = len(getattr(self, name))
                raise SearchError(f"ItemMeta: '{name}' has {got} entries for {n} items.")
        self._position = {x: i for i, x in enumerate(self.item_ids)}

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> ItemMeta:
        return cls(
            list(catalog.item_ids),
            list(catalog.title),
            list(catalog.brand),
            [list(c) for c in catalog.categories],
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._position

    def position(self, item_id: str) -> int:
        """The index position of an item id; :class:`SearchError` for an unknown id."""
        pos = self._position.get(str(item_id))
        if pos is None:
            examples = ", ".join(self.item_ids[:3])
            raise SearchError(
                f"item={item_id}: no such item in the index ({len(self)} items, e.g. {examples}). "
                "Give an item id of the run's catalogue (or one added as a cold-start item)."
            )
        return pos

    def append(self, item_id: str, title: str | None, brand: str | None, categories: Sequence[str]) -> int:
        if item_id in self:
            raise SearchError(f"item id '{item_id}' is already in the index; give a new id.")
        self.item_ids.append(str(item_id))
        self.title.append(title)
        self.brand.append(brand)
        self.categories.append(list(categories))
        self._position[str(item_id)] = len(self.item_ids) - 1
        self._lower.clear()
        return len(self.item_ids) - 1

    def lowered(self, name: str) -> list[str]:
        """``brand`` or ``categories`` (the path joined with ``" > "``), lower-case, cached."""
        if name not in self._lower:
            if name == "brand":
                self._lower[name] = [(b or "").lower() for b in self.brand]
            else:
                self._lower[name] = [" > ".join(c).lower() for c in self.categories]
        return self._lower[name]

    def row(self, i: int) -> dict[str, Any]:
        return {
            "item_id": self.item_ids[i],
            "title": self.title[i],
            "brand": self.brand[i],
            "categories": list(self.categories[i]),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "item_ids": self.item_ids,
            "title": self.title,
            "brand": self.brand,
            "categories": self.categories,
        }


@dataclass
class ItemFilter:
    """Attribute filters: case-insensitive substrings of the category path (any level, e.g.
    ``"telephones"``) and of the brand. Both must hold when both are given."""

    category: str | None = None
    brand: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.category) or bool(self.brand)

    def mask(self, meta: ItemMeta) -> np.ndarray:
        """``[n_items]`` bool: which items pass."""
        keep = np.ones(len(meta), dtype=bool)
        for name, needle in (("categories", self.category), ("brand", self.brand)):
            if needle:
                needle = str(needle).lower()
                keep &= np.fromiter((needle in s for s in meta.lowered(name)), bool, len(meta))
        return keep

    def describe(self) -> str:
        parts = [f"{k}~'{v}'" for k, v in (("category", self.category), ("brand", self.brand)) if v]
        return " and ".join(parts) or "none"


class ItemIndex:
    """A faiss index over L2-normalised item embeddings (cosine = inner product).

    Args:
        vectors: item embeddings ``[N, d]`` (normalised here), row = item index.
        meta: the items' ids and metadata, one row per vector.
        embedding: which embedding of the run this is (``H_mm_item`` = :math:`H^{MM}`, Eq. 7; or
            ``item`` = :math:`H_{item}`), recorded in the metadata.
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
        embedding: str = "H_mm_item",
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
        if allowed is None or allowed.all():
            scores, pos = self.index.search(q, min(k, self.n_items), params=self._params(None))
            return _pad(scores, pos, k)
        bitmap = np.packbits(allowed.astype(bool), bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        n_allowed = int(allowed.sum())
        kk = min(k, n_allowed)
        if kk == 0:
            return _pad(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64), k)
        scores, pos = self.index.search(q, kk, params=self._params(selector))
        short = (pos[:, kk - 1] < 0).nonzero()[0]
        if len(short):  # approximate search missed some: exact over the allowed items
            cand = np.flatnonzero(allowed)
            sub = q[short] @ self._x[cand].T
            top = _top_k(sub, kk)
            scores[short] = np.take_along_axis(sub, top, 1)
            pos[short] = cand[top]
        return _pad(scores, pos, k)

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


def run_embeddings(run_dir: str | Path, embedding: str = "H_mm_item") -> np.ndarray:
    """One item embedding matrix of a trained run (``embeddings.pt``), ``[N, d]``."""
    import torch

    path = Path(run_dir) / "embeddings.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"run_dir={run_dir} is not a trained run: embeddings.pt is missing. Train one with "
            f"`emmkgr-train model=emmkgr hydra.run.dir={run_dir}` or point run_dir at a finished "
            "run."
        )
    if embedding not in EMBEDDINGS:
        raise SearchError(f"search.embedding={embedding}: choose one of {list(EMBEDDINGS)}.")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if embedding not in saved:
        raise SearchError(
            f"search.embedding={embedding}: {path} has {sorted(saved)}. Use one of "
            f"{list(EMBEDDINGS)} the run has (H_mm_item needs a run trained with model=emmkgr)."
        )
    return saved[embedding].detach().float().numpy()


def open_index(
    run_dir: str | Path,
    meta: ItemMeta | Callable[[], ItemMeta],
    embedding: str = "H_mm_item",
    kind: str = "exact",
    rebuild: bool = False,
    save: bool = True,
    **kwargs: Any,
) -> ItemIndex:
    """The run's item index: the saved one (``search_index.faiss``) when it indexes these very
    embeddings (same fingerprint, embedding and kind; cold-start items it holds are kept), else a
    new one, saved beside the run when ``save``.

    Args:
        run_dir: a trained run folder (with ``embeddings.pt``).
        meta: the items' metadata, or a function giving it (called only when building).
        embedding: ``H_mm_item`` or ``item`` (see :data:`EMBEDDINGS`).
        kind: ``exact`` or ``hnsw``.
        rebuild: build even when a matching index is saved.
        save: write a newly built index beside the run.
    """
    run_dir = Path(run_dir)
    vectors = run_embeddings(run_dir, embedding)
    fingerprint = stable_hash(normalize_rows(vectors))
    if not rebuild and (run_dir / META_FILE).is_file() and (run_dir / INDEX_FILE).is_file():
        info = json.loads((run_dir / META_FILE).read_text())
        saved = (info.get("fingerprint"), info.get("embedding"), info.get("kind"))
        if saved == (fingerprint, embedding, kind):
            return ItemIndex.load(run_dir)
        log.info("%s indexes other embeddings (%s, %s); rebuilding it", INDEX_FILE, *saved[1:])
    meta = meta() if callable(meta) else meta
    index = ItemIndex(vectors, meta, embedding, kind, fingerprint=fingerprint, **kwargs)
    if save:
        index.save(run_dir)
    return index


class VectorBaseline:
    """The vector-based retrieval baseline: raw query embeddings against each modality's raw
    features, an item scored by its best single-modality match (items lacking every queried
    modality score ``-inf`` and rank last).

    Args:
        features: per modality, the raw features ``[M_m, F_m]`` of the items that have it.
        item_index: per modality, the item position of each feature row ``[M_m]``.
        n_items: number of items.
    """

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        item_index: Mapping[str, np.ndarray],
        n_items: int,
    ) -> None:
        self.features = {m: normalize_rows(x) for m, x in features.items()}
        self.item_index = {m: np.asarray(item_index[m], dtype=np.int64) for m in features}
        self.n_items = n_items

    @classmethod
    def from_dataset(cls, dataset: MMDataset, modalities: Sequence[str]) -> VectorBaseline:
        """Over the encoded ``modalities`` of a dataset."""
        mods = {m: dataset.modalities[m] for m in modalities}
        missing = [m for m, mod in mods.items() if mod.features is None]
        if missing:
            raise SearchError(f"VectorBaseline: modalities {missing} have no features yet.")
        return cls(
            {m: mod.features for m, mod in mods.items()},
            {m: mod.item_index for m, mod in mods.items()},
            dataset.n_items,
        )

    def scores(self, queries: Mapping[str, np.ndarray]) -> np.ndarray:
        """``[B, N]``: for each query, the max over the given modalities of the cosine similarity
        between the query's raw embedding for that modality and the item's raw features."""
        if not queries:
            raise SearchError("VectorBaseline: no modality to compare the query with.")
        unknown = [m for m in queries if m not in self.features]
        if unknown:
            raise SearchError(f"VectorBaseline: unknown modality {unknown}; it has {sorted(self.features)}.")
        b = len(next(iter(queries.values())))
        out = np.full((b, self.n_items), -np.inf, dtype=np.float32)
        for m, q in queries.items():
            s = normalize_rows(np.atleast_2d(q)) @ self.features[m].T
            cols = self.item_index[m]
            out[:, cols] = np.maximum(out[:, cols], s)
        return out

    def search(
        self, queries: Mapping[str, np.ndarray], k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by best single-modality match among ``allowed`` items (exact)."""
        s = self.scores(queries)
        if allowed is not None:
            s[:, ~allowed] = -np.inf
        kk = min(int(k), self.n_items if allowed is None else int(allowed.sum()))
        top = _top_k(s, kk)
        scores, pos = np.take_along_axis(s, top, 1), top
        pos = np.where(np.isfinite(scores), pos, -1)
        return _pad(scores, pos, int(k))


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest scores per row, best first, ties by lower index."""
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    vals = np.take_along_axis(scores, part, 1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, 1).astype(np.int64)


def _pad(scores: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad results to ``k`` columns with ``-1`` positions and ``-inf`` scores."""
    pos = np.asarray(pos, dtype=np.int64)
    scores = np.where(pos >= 0, scores, -np.inf).astype(np.float32)
    if pos.shape[1] < k:
        extra = k - pos.shape[1]
        pos = np.concatenate([pos, np.full((pos.shape[0], extra), -1, np.int64)], 1)
        scores = np.concatenate([scores, np.full((scores.shape[0], extra), -np.inf, np.float32)], 1)
    return scores, pos

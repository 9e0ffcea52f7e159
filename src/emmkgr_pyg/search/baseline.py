r"""The vector-based retrieval baseline of product search (paper section 4.1): the raw query
embedding against each modality's raw features independently, an item scored by its best
single-modality match,

.. math::
    s(q, i) = \max_{m \,:\, i \text{ has } m} \mathrm{sim}(f^{m}_{enc}(q), \hat{\mathbf{m}}_i).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..data.dataset import MMDataset
from ..graph.knn import normalize_rows
from .errors import SearchError
from .topk import pad_top_k, top_k


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
        top = top_k(s, kk)
        scores, pos = np.take_along_axis(s, top, 1), top
        pos = np.where(np.isfinite(scores), pos, -1)
        return pad_top_k(scores, pos, min(int(k), self.n_items))

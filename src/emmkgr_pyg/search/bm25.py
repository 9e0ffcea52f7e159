r"""BM25 over the text an item is indexed with (Robertson and Zaragoza, 2009; ``bm25s``): one
document per item, its indexed text fields joined, tokenised as the query sets are (lower case,
hyphenated words whole) without English stop words,

.. math::
    s(q, i) = \sum_{t \in q} \ln\Big(1 + \frac{N - n_t + 0.5}{n_t + 0.5}\Big)
        \frac{f_{t,i}}{f_{t,i} + k_1 (1 - b + b\, |i| / \overline{|i|})}

(``bm25s``'s default, Lucene's form; :math:`n_t` the items holding :math:`t`, :math:`f_{t,i}` its
count in item :math:`i`, :math:`|i|` the item's length; :math:`k_1 = 1.5`, :math:`b = 0.75`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..data.dataset import MMDataset
from ..data.text import tokens
from .errors import SearchError


def bm25_tokens(text: str | None) -> list[str]:
    """The tokens BM25 indexes and matches: :func:`tokens` without English stop words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return [t for t in tokens(text) if t not in ENGLISH_STOP_WORDS]


class BM25Search:
    """BM25 over one text per item.

    Args:
        documents: per item, its indexed text (``None`` or empty: it matches nothing).
        k1, b: the BM25 parameters (defaults ``1.5``, ``0.75``).
    """

    def __init__(self, documents: Sequence[str | None], k1: float = 1.5, b: float = 0.75) -> None:
        try:
            import bm25s
        except ImportError as e:  # a dependency; say how to get it
            raise SearchError("BM25Search needs bm25s: pip install bm25s") from e
        self.n_items = len(documents)
        docs = [bm25_tokens(d) for d in documents]
        self.vocab = {t: j for j, t in enumerate(sorted({t for d in docs for t in d}))}
        self.retriever = bm25s.BM25(k1=k1, b=b)
        self.retriever.index(
            bm25s.tokenization.Tokenized(ids=[[self.vocab[t] for t in d] for d in docs], vocab=self.vocab),
            show_progress=False,
        )

    @classmethod
    def from_dataset(cls, dataset: MMDataset, modalities: Sequence[str]) -> BM25Search:
        """Over the raw text of the text ``modalities`` of a dataset, joined per item."""
        return cls(indexed_text(dataset, modalities))

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """``[B, N]`` BM25 scores of each query against every item (``0`` without a shared word)."""
        out = np.zeros((len(queries), self.n_items), dtype=np.float32)
        for row, q in enumerate(queries):
            ids = [self.vocab[t] for t in bm25_tokens(q) if t in self.vocab]
            if ids:
                out[row] = self.retriever.get_scores(ids)
        return out


def indexed_text(dataset: MMDataset, modalities: Sequence[str]) -> list[str | None]:
    """Per item, the raw text of its text ``modalities`` joined (``None`` where it has none)."""
    parts: list[list[str]] = [[] for _ in range(dataset.n_items)]
    for m in modalities:
        mod = dataset.modalities[m]
        if mod.kind != "text" or mod.raw is None:
            continue
        for i, text in zip(mod.item_index, mod.raw, strict=True):
            if text:
                parts[int(i)].append(str(text))
    return [" \n ".join(p) if p else None for p in parts]


def text_fields(dataset: MMDataset) -> Mapping[str, list[str | None]]:
    """Per text modality of a dataset, its raw text per item (``None`` where missing)."""
    return {m: indexed_text(dataset, [m]) for m, mod in dataset.modalities.items() if mod.kind == "text"}

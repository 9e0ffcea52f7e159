r"""Leak-free product-search query sets (``queries.protocol: leakfree``, the default): every query
set names its source field, and that field is indexed by no method under test.

- **coarse** (``kind: category``, source ``categories``): a leaf of the category paths, targets =
  every item whose path holds it, ``min_targets`` to ``max_share`` x N of them. Only for models and
  baselines that index no category text (no ``attributes`` modality, or attributes without
  categories): the caller checks that (:func:`~emmkgr_pyg.runs.search.leakfree_inputs`).
- **fine** (``kind: item``): a window of ``fine_words`` words of text about one item that is not
  encoded: a review of a held-out (validation or test) interaction where the dataset has reviews
  (source ``heldout_review``), else the description when only titles and attributes are indexed
  (source ``description``); target = that item. The window is the one with the rarest words
  (highest mean idf over the source texts) among those that carry no identifier and share no
  ``shared_ngram`` consecutive words with any indexed text, nor the phrase with another item's
  source text.

No query holds an identifier: no token with a digit (model numbers, SKUs, sizes), no brand token.
Dev and test sets never share a query: the candidates are split in two halves by a hash of the
category or the target item (:func:`part_of`), and each part is drawn with its own seed; every
choice is made on ``dev``, only ``test`` is reported.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.dataset import Catalog
from .search_queries import _FILLER, _WORD, QuerySetConfig, SearchQuery, tokens

#: the two halves of the candidate queries
PARTS = ("dev", "test")
#: where fine-grained leak-free queries may come from, in order of preference
FINE_SOURCES = ("heldout_review", "description")


@dataclass
class LeakFreeInputs:
    """What leak-free query sets are built from besides the catalogue.

    Attributes:
        indexed: per item, all the text any method under test indexes (its fields joined).
        fine_source: ``(source name, [(item position, text), ...])``: unindexed text about items,
            or ``None`` where there is none (no fine set).
        categories_indexed: whether some method under test indexes category text (no coarse set).
    """

    indexed: list[str | None]
    fine_source: tuple[str, list[tuple[int, str]]] | None
    categories_indexed: bool


def part_of(key: str) -> str:
    """The half (``dev`` or ``test``) a candidate query belongs to, by a stable hash of ``key``."""
    return PARTS[hashlib.sha1(key.encode()).digest()[0] % 2]


def has_identifier(toks: Sequence[str], brand_tokens: set[str]) -> bool:
    """Whether query tokens hold an identifier: a token with a digit, or a brand token."""
    return any(any(c.isdigit() for c in t) or t in brand_tokens for t in toks)


def brand_tokens(catalog: Catalog) -> set[str]:
    """The tokens of every brand of the catalogue, stop words aside (``the``, ``and``)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return {t for b in catalog.brand if b for t in tokens(b)} - set(ENGLISH_STOP_WORDS)


def ngrams(toks: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """The runs of ``n`` consecutive tokens (the whole sequence when shorter)."""
    if len(toks) < n:
        return {tuple(toks)} if toks else set()
    return {tuple(toks[s : s + n]) for s in range(len(toks) - n + 1)}


def indexed_ngrams(indexed: Sequence[str | None], n: int) -> set[tuple[str, ...]]:
    """Every run of ``n`` consecutive tokens of the indexed texts."""
    out: set[tuple[str, ...]] = set()
    for text in indexed:
        toks = tokens(text)
        out.update(tuple(toks[s : s + n]) for s in range(len(toks) - n + 1))
    return out


def build_leakfree_sets(
    catalog: Catalog,
    indexed: Sequence[str | None],
    fine_source: tuple[str, Sequence[tuple[int, str]]] | None,
    cfg: QuerySetConfig | None = None,
    categories_indexed: bool = False,
) -> dict[str, list[SearchQuery]]:
    """The leak-free fine- and coarse-grained query sets of ``cfg.part`` (module docstring).

    Args:
        catalog: the items (ids, brands, category paths).
        indexed: per item, all the text any method under test indexes (joined fields).
        fine_source: ``(name, [(item position, text), ...])``, the unindexed text fine queries come
            from, or ``None`` (no fine set).
        cfg: sizes, seed, ``part``, ``fine_words`` and ``shared_ngram``.
        categories_indexed: whether some method indexes category text (then no coarse set).
    """
    cfg = cfg or QuerySetConfig()
    part = cfg.part
    if part not in PARTS:
        raise ValueError(f"build_leakfree_sets: part '{part}' is not one of {PARTS}.")
    if len(indexed) != catalog.n_items:
        raise ValueError(f"build_leakfree_sets: {len(indexed)} indexed texts for {catalog.n_items} items.")
    brands = brand_tokens(catalog)
    rng = np.random.default_rng(cfg.seed)
    coarse = [] if categories_indexed else _category_queries(catalog, brands, rng, cfg, part)
    fine = []
    if fine_source is not None:
        name, texts = fine_source
        fine = _fine_queries(catalog, indexed, name, texts, brands, rng, cfg, part)
    return {"fine": fine, "coarse": coarse}


def _category_queries(
    catalog: Catalog, brands: set[str], rng: np.random.Generator, cfg: QuerySetConfig, part: str
) -> list[SearchQuery]:
    holders: dict[str, set[int]] = {}
    for i, path in enumerate(catalog.categories):
        for c in path:
            holders.setdefault(c, set()).add(i)
    leaves = sorted({path[-1] for path in catalog.categories if path})
    ok = [
        c
        for c in leaves
        if cfg.min_targets <= len(holders[c]) <= cfg.max_share * catalog.n_items
        and tokens(c)
        and not has_identifier(tokens(c), brands)
        and part_of(f"category:{c.lower()}") == part
    ]
    picked = (
        sorted(rng.choice(len(ok), size=min(cfg.n_category, len(ok)), replace=False).tolist()) if ok else []
    )
    return [
        SearchQuery(
            f"{part}-category-{j}",
            "coarse",
            "category",
            ok[c],
            [catalog.item_ids[i] for i in sorted(holders[ok[c]])],
            "categories",
        )
        for j, c in enumerate(picked)
    ]


def _fine_queries(
    catalog: Catalog,
    indexed: Sequence[str | None],
    source: str,
    texts: Sequence[tuple[int, str]],
    brands: set[str],
    rng: np.random.Generator,
    cfg: QuerySetConfig,
    part: str,
) -> list[SearchQuery]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stop = set(ENGLISH_STOP_WORDS) | _FILLER
    n_gram = cfg.shared_ngram
    seen = indexed_ngrams(indexed, n_gram)
    by_item: dict[int, list[str]] = {}
    for i, t in texts:
        if t and t.strip():
            by_item.setdefault(int(i), []).append(t)
    docs = {i: " \n ".join(ts) for i, ts in by_item.items()}
    df = Counter(w for d in docs.values() for w in set(tokens(d)))
    idf = {w: float(np.log((1 + len(docs)) / (1 + c))) + 1.0 for w, c in df.items()}
    # a phrase must also name one item: it may not occur in another item's source text
    joined = {i: " ".join(tokens(d)) for i, d in docs.items()}
    items = [i for i in sorted(docs) if part_of(f"item:{catalog.item_ids[i]}") == part]
    out: list[SearchQuery] = []
    for i in rng.permutation(np.array(items, dtype=np.int64)) if items else []:
        if len(out) >= cfg.n_fine:
            break
        best: tuple[float, str] | None = None
        for text in by_item[int(i)]:
            words = _WORD.findall(text)
            width = min(cfg.fine_words, len(words))
            for s in range(len(words) - width + 1):
                phrase = " ".join(words[s : s + width]).strip(" ,.;:!?()[]\"'")
                toks = tokens(phrase)
                content = [t for t in toks if t.isalpha() and t not in stop]
                if len(content) < 2 or has_identifier(toks, brands) or ngrams(toks, n_gram) & seen:
                    continue
                score = float(np.mean([idf.get(t, 0.0) for t in toks]))
                if best is None or score > best[0]:
                    needle = " ".join(toks)
                    if not any(needle in d for j, d in joined.items() if j != int(i)):
                        best = (score, phrase)
        if best is not None:
            qid = f"{part}-fine-{len(out)}"
            out.append(SearchQuery(qid, "fine", "item", best[1], [catalog.item_ids[int(i)]], source))
    return out

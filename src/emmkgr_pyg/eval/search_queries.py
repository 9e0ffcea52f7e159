r"""Product-search query sets (paper section 4.1), built from a catalogue's own metadata alone and
seeded (:func:`build_query_sets`):

- **fine-grained**: a phrase naming one target item's attributes, a window of consecutive words of
  its description or title (never the whole title), the window with the rarest words (highest
  mean idf) that occurs in no other item's title or description; target = that item.
- **coarse-grained**: a category (a leaf of a category path), targets = every item whose path
  holds it; or an attribute phrase (a word or word pair of the titles, not a brand, not a
  stop word), targets = every item whose title or description contains it. Only queries with
  ``min_targets`` to ``max_share`` x N targets are kept.

Saving them and reusing saved ones is :mod:`.query_store`; the metrics are :mod:`.search_eval`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.dataset import Catalog
from ..data.text import tokens

QUERY_SETS = ("fine", "coarse")
#: ``queries.protocol``: leak-free (the default) or the old string lookup
PROTOCOLS = ("leakfree", "lookup")

_WORD = re.compile(r"\S+")
# marketing words that the stop-word list lacks and that name no attribute
_FILLER = frozenset(
    "new great good best use used using easy make makes made great quality product products "
    "item items pack set includes including ideal perfect designed features feature".split()
)


@dataclass
class SearchQuery:
    """One query: ``text``, its ``targets`` (item ids) and how it was made."""

    qid: str
    set: str
    kind: str
    text: str
    targets: list[str]
    source: str | None = None


@dataclass
class QuerySetConfig:
    """How query sets are built (``conf/eval_search.yaml``, ``queries``).

    Args:
        seed: seeds every choice (default ``0``).
        n_fine: fine-grained queries (default ``500``).
        n_category: coarse-grained category queries (default ``100``).
        n_attribute: coarse-grained attribute-phrase queries (default ``100``).
        fine_words: words in a fine-grained phrase (default ``6``; shorter for short titles, at
            least 3).
        description_share: share of fine-grained phrases taken from descriptions when the item
            has one of at least ``fine_words`` words (default ``0.5``).
        min_targets: fewest targets of a coarse query (default ``5``).
        max_share: most targets of a coarse query, as a share of the items (default ``0.1``).
        protocol: ``leakfree`` (:mod:`.leakfree_queries`: no query from an indexed field) or
            ``lookup`` (this module: phrases copied from the indexed text) (default ``leakfree``).
        part: the half of the leak-free candidates, ``dev`` (choices) or ``test`` (reported)
            (default ``test``; ``lookup`` has no parts).
        shared_ngram: a leak-free fine query shares no run of this many words with indexed text
            (default ``4``).
    """

    seed: int = 0
    n_fine: int = 500
    n_category: int = 100
    n_attribute: int = 100
    fine_words: int = 6
    description_share: float = 0.5
    min_targets: int = 5
    max_share: float = 0.1
    protocol: str = "leakfree"
    part: str = "test"
    shared_ngram: int = 4


def build_query_sets(
    catalog: Catalog, descriptions: Sequence[str | None], cfg: QuerySetConfig | None = None
) -> dict[str, list[SearchQuery]]:
    """The fine- and coarse-grained query sets of a catalogue (see the module docstring).

    Args:
        catalog: the items (ids, titles, brands, category paths).
        descriptions: one description per item (``None`` when it has none).
        cfg: the sizes and the seed.
    """
    cfg = cfg or QuerySetConfig()
    n = catalog.n_items
    if len(descriptions) != n:
        raise ValueError(f"build_query_sets: {len(descriptions)} descriptions for {n} items.")
    titles = [t or "" for t in catalog.title]
    descs = [d or "" for d in descriptions]
    texts = [f"{t} \n {d}".lower() for t, d in zip(titles, descs, strict=True)]
    docs = [set(tokens(t)) | set(tokens(d)) for t, d in zip(titles, descs, strict=True)]
    df = Counter(w for doc in docs for w in doc)
    idf = {w: float(np.log((1 + n) / (1 + c))) + 1.0 for w, c in df.items()}
    rng = np.random.default_rng(cfg.seed)
    fine = _fine_queries(catalog, titles, descs, texts, idf, rng, cfg)
    coarse = _category_queries(catalog, rng, cfg)
    coarse += _attribute_queries(catalog, titles, descs, rng, cfg)
    return {"fine": fine, "coarse": coarse}


def _fine_queries(
    catalog: Catalog,
    titles: list[str],
    descs: list[str],
    texts: list[str],
    idf: dict[str, float],
    rng: np.random.Generator,
    cfg: QuerySetConfig,
) -> list[SearchQuery]:
    out: list[SearchQuery] = []
    for i in rng.permutation(catalog.n_items):
        if len(out) >= cfg.n_fine:
            break
        desc_words, title_words = _WORD.findall(descs[i]), _WORD.findall(titles[i])
        use_desc = len(desc_words) >= cfg.fine_words and rng.random() < cfg.description_share
        words, source = (desc_words, "description") if use_desc else (title_words, "title")
        width = cfg.fine_words if use_desc else min(cfg.fine_words, len(title_words) - 1)
        if width < 3:
            continue
        phrase = _best_window(words, width, idf, texts, int(i), titles[i])
        if phrase is not None:
            qid = f"fine-{len(out)}"
            out.append(SearchQuery(qid, "fine", "item", phrase, [catalog.item_ids[i]], source))
    return out


def _best_window(
    words: list[str], width: int, idf: dict[str, float], texts: list[str], item: int, title: str
) -> str | None:
    """The window of ``width`` words with the highest mean idf that no other item's text holds
    and that does not contain the item's whole title."""
    title = title.lower().strip()
    windows = []
    for s in range(len(words) - width + 1):
        phrase = " ".join(words[s : s + width]).strip(" ,.;:!?()[]\"'")
        toks = tokens(phrase)
        if sum(t.isalpha() for t in toks) < 2:
            continue
        windows.append((-float(np.mean([idf.get(t, 0.0) for t in toks])), s, phrase))
    for _, _, phrase in sorted(windows):
        needle = phrase.lower()
        if title and title in needle:
            continue
        if not any(needle in t for j, t in enumerate(texts) if j != item):
            return phrase
    return None


def _category_queries(catalog: Catalog, rng: np.random.Generator, cfg: QuerySetConfig) -> list[SearchQuery]:
    n = catalog.n_items
    holders: dict[str, set[int]] = {}
    for i, path in enumerate(catalog.categories):
        for c in path:
            holders.setdefault(c, set()).add(i)
    leaves = sorted({path[-1] for path in catalog.categories if path})
    ok = [c for c in leaves if cfg.min_targets <= len(holders[c]) <= cfg.max_share * n]
    out = []
    for j, c in enumerate(_sample(rng, len(ok), cfg.n_category)):
        targets = [catalog.item_ids[i] for i in sorted(holders[ok[c]])]
        out.append(SearchQuery(f"category-{j}", "coarse", "category", ok[c], targets))
    return out


def _attribute_queries(
    catalog: Catalog,
    titles: list[str],
    descs: list[str],
    rng: np.random.Generator,
    cfg: QuerySetConfig,
) -> list[SearchQuery]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    n = catalog.n_items
    stop = set(ENGLISH_STOP_WORDS) | _FILLER
    brands = {t for b in catalog.brand if b for t in tokens(b)}
    categories = {c.lower() for path in catalog.categories for c in path}

    def grams(text: str) -> set[str]:
        toks = tokens(text)
        uni = {t for t in toks if t.isalpha() or "-" in t}
        bi = {
            f"{a} {b}"
            for a, b in zip(toks, toks[1:])
            if a in uni and b in uni and a not in stop and b not in stop
        }
        return {g for g in uni if g not in stop and len(g) >= 3} | bi

    in_title = [grams(t) for t in titles]
    holders: dict[str, list[int]] = {}
    for i, d in enumerate(descs):
        for g in in_title[i] | grams(d):
            holders.setdefault(g, []).append(i)
    title_df = Counter(g for gs in in_title for g in gs)
    ok = sorted(
        g
        for g, c in title_df.items()
        if c >= cfg.min_targets
        and cfg.min_targets <= len(holders[g]) <= cfg.max_share * n
        and not (set(g.split()) & brands)
        and g not in categories
    )
    out = []
    for j, c in enumerate(_sample(rng, len(ok), cfg.n_attribute)):
        targets = [catalog.item_ids[i] for i in holders[ok[c]]]
        out.append(SearchQuery(f"attribute-{j}", "coarse", "attribute", ok[c], targets))
    return out


def _sample(rng: np.random.Generator, n: int, size: int) -> list[int]:
    """``min(size, n)`` distinct indices of ``range(n)``, sorted."""
    return sorted(rng.choice(n, size=min(size, n), replace=False).tolist()) if n else []

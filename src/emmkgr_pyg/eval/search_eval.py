r"""Product-search evaluation (paper section 4.1): query sets from a catalogue's own metadata, and
ranking metrics.

Two query sets, built from the catalogue alone and seeded (:func:`build_query_sets`):

- **fine-grained**: a phrase naming one target item's attributes, a window of consecutive words of
  its description or title (never the whole title), the window with the rarest words (highest
  mean idf) that occurs in no other item's title or description; target = that item.
- **coarse-grained**: a category (a leaf of a category path), targets = every item whose path
  holds it; or an attribute phrase (a word or word pair of the titles, not a brand, not a
  stop word), targets = every item whose title or description contains it. Only queries with
  ``min_targets`` to ``max_share`` x N targets are kept.

Metrics per query, averaged over the set, with :math:`T` the targets, :math:`h_r \in \{0, 1\}`
whether the item at rank :math:`r` of the full ranking is a target and :math:`r^*` the rank of the
first target:

.. math::
    \mathrm{Recall@}k = \frac{\sum_{r \le k} h_r}{|T|}, \quad
    \mathrm{MAP@}k = \frac{1}{\min(|T|, k)} \sum_{r \le k} h_r \, \frac{\sum_{s \le r} h_s}{r},
    \quad \mathrm{MRR} = \frac{1}{r^*}, \quad
    \mathrm{NDCG@}k = \frac{\sum_{r \le k} h_r / \log_2(r + 1)}
                          {\sum_{r \le \min(|T|, k)} 1 / \log_2(r + 1)}

(MAP and NDCG as :mod:`emmkgr_pyg.eval.ranking` defines them for recommendation). Rankings are
full (every item), ties broken by item position.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data.dataset import Catalog
from ..utils import atomic_path

QUERY_SETS = ("fine", "coarse")
DEFAULT_KS = (5, 10, 20)
#: the metrics :func:`evaluate` reports, in table order
METRIC_NAMES = ("Recall@5", "Recall@10", "Recall@20", "MAP@10", "MRR", "NDCG@10")

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
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
    """

    seed: int = 0
    n_fine: int = 500
    n_category: int = 100
    n_attribute: int = 100
    fine_words: int = 6
    description_share: float = 0.5
    min_targets: int = 5
    max_share: float = 0.1


def tokens(text: str | None) -> list[str]:
    """Lower-case word tokens (hyphenated words stay whole: ``non-stick``)."""
    return _TOKEN.findall(text.lower()) if text else []


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


def save_queries(path: str | Path, queries: Sequence[SearchQuery]) -> Path:
    """Write queries as JSONL (one JSON object per line), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(asdict(q)) + "\n" for q in queries))
    return path


def load_queries(path: str | Path) -> list[SearchQuery]:
    """Read queries written by :func:`save_queries`."""
    path = Path(path)
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(SearchQuery(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a query line ({e}); rebuild the queries.") from e
    return out


def query_metrics(
    hits: np.ndarray,
    n_targets: np.ndarray,
    first_rank: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, np.ndarray]:
    """Per-query metrics from the top of the ranking.

    Args:
        hits: ``[B, K]`` bool, whether the item at rank ``r`` (``r = 1..K``, ``K >= max(ks)``) is
            a target.
        n_targets: ``[B]`` number of targets of each query.
        first_rank: ``[B]`` rank of the first target in the full ranking (``0`` if none).
        ks: the Recall cut-offs; MAP and NDCG are at 10.
    """
    hits = np.asarray(hits, dtype=np.float64)
    n_t = np.asarray(n_targets, dtype=np.float64)
    ranks = np.arange(1, hits.shape[1] + 1, dtype=np.float64)
    cum = np.cumsum(hits, 1)
    out = {f"Recall@{k}": cum[:, k - 1] / n_t for k in ks}
    k = 10
    denom = np.minimum(n_t, k)
    out["MAP@10"] = (hits[:, :k] * cum[:, :k] / ranks[:k]).sum(1) / denom
    first = np.asarray(first_rank, dtype=np.float64)
    out["MRR"] = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
    discount = 1.0 / np.log2(ranks[:k] + 1)
    idcg = np.cumsum(discount)[denom.astype(int) - 1]
    out["NDCG@10"] = (hits[:, :k] * discount).sum(1) / idcg
    return out


def evaluate(
    score_fn: Callable[[list[SearchQuery]], np.ndarray],
    queries: Sequence[SearchQuery],
    item_ids: Sequence[str],
    batch_size: int = 256,
    ks: Sequence[int] = DEFAULT_KS,
    progress: bool = False,
    desc: str = "search",
) -> dict[str, float]:
    """Mean metrics of a retrieval method over a query set.

    Args:
        score_fn: scores ``[B, N]`` of a batch of queries against every item (higher = better).
        queries: the query set; targets are item ids.
        item_ids: the item id of each score column.
    """
    position = {x: i for i, x in enumerate(item_ids)}
    kmax = max(max(ks), 10)
    sums: dict[str, float] = {}
    starts = range(0, len(queries), batch_size)
    for s in tqdm(starts, desc=desc, disable=not progress):
        batch = list(queries[s : s + batch_size])
        scores = np.asarray(score_fn(batch), dtype=np.float64)
        truth = np.zeros(scores.shape, dtype=bool)
        for row, q in enumerate(batch):
            unknown = [t for t in q.targets if t not in position]
            if unknown:
                raise ValueError(
                    f"query {q.qid}: target item '{unknown[0]}' is not in the ranking; the query "
                    "set was built for another catalogue (rebuild it: rebuild_queries=true)."
                )
            truth[row, [position[t] for t in q.targets]] = True
        order = np.argsort(-scores, axis=1, kind="stable")
        hit = np.take_along_axis(truth, order, 1)
        first = np.where(hit.any(1), hit.argmax(1) + 1, 0)
        per_query = query_metrics(hit[:, :kmax], truth.sum(1), first, ks)
        for name, values in per_query.items():
            sums[name] = sums.get(name, 0.0) + float(values.sum())
    n = max(len(queries), 1)
    return {name: sums.get(name, 0.0) / n for name in METRIC_NAMES}


def results_table(
    results: dict[str, dict[str, dict[str, float]]],
) -> tuple[list[str], list[list[Any]]]:
    """``{set: {method: {metric: value}}}`` as (header, rows) for :func:`markdown_table`."""
    header = ["query set", "method", *METRIC_NAMES]
    rows = [
        [qset, method, *(float(vals[m]) for m in METRIC_NAMES)]
        for qset, methods in results.items()
        for method, vals in methods.items()
    ]
    return header, rows

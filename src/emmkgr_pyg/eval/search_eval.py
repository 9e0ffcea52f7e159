r"""Product-search evaluation (paper section 4.1): a retrieval method ranks every item for every
query of a query set (:mod:`.search_queries`), and the ranking is scored with the metrics of
:mod:`.metrics`, with :math:`T` the query's targets as the relevant items: Recall at each requested
cut-off, MAP@10, NDCG@10 and MRR over the full ranking (:math:`1 / r^*`, :math:`r^*` the rank of the
first target). Rankings are full (every item), ties broken by item position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .metrics import hit_metrics
from .search_queries import SearchQuery

DEFAULT_KS = (5, 10, 20)
#: the cut-off of MAP and NDCG (the paper's table)
AT = 10


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> tuple[str, ...]:
    """The metrics :func:`evaluate` reports for Recall cut-offs ``ks``, in table order."""
    return (*(f"Recall@{k}" for k in dict.fromkeys(ks)), f"MAP@{AT}", "MRR", f"NDCG@{AT}")


#: the metrics :func:`evaluate` reports with the default cut-offs, in table order
METRIC_NAMES = metric_names()


def evaluate(
    score_fn: Callable[[list[SearchQuery]], np.ndarray],
    queries: Sequence[SearchQuery],
    item_ids: Sequence[str],
    batch_size: int = 256,
    ks: Sequence[int] = DEFAULT_KS,
    progress: bool = False,
    desc: str = "search",
) -> dict[str, float]:
    """Mean metrics of a retrieval method over a query set, keyed :func:`metric_names` ``(ks)``.

    Args:
        score_fn: scores ``[B, N]`` of a batch of queries against every item (higher = better).
        queries: the query set; targets are item ids.
        item_ids: the item id of each score column.
        batch_size: queries scored at once (default ``256``).
        ks: the Recall cut-offs (default ``(5, 10, 20)``).
    """
    names = metric_names(ks)
    position = {x: i for i, x in enumerate(item_ids)}
    sums = dict.fromkeys(names, 0.0)
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
        for name, values in hit_metrics(hit, truth.sum(1), names).items():
            sums[name] += float(values.sum())
    n = max(len(queries), 1)
    return {name: v / n for name, v in sums.items()}


def results_table(
    results: dict[str, dict[str, dict[str, float]]],
) -> tuple[list[str], list[list[Any]]]:
    """``{set: {method: {metric: value}}}`` as (header, rows) for :func:`markdown_table`; the
    columns are the metrics of the first entry."""
    first = next((vals for methods in results.values() for vals in methods.values()), {})
    names = list(first) or list(METRIC_NAMES)
    header = ["query set", "method", *names]
    rows = [
        [qset, method, *(float(vals[m]) for m in names)]
        for qset, methods in results.items()
        for method, vals in methods.items()
    ]
    return header, rows

r"""Ranking metrics from a hits matrix: the one place where "which of the top-ranked items are
relevant" becomes numbers, for recommendation (:mod:`.ranking`) and search (:mod:`.search_eval`).

With :math:`h_{u,r} \in \{0, 1\}` whether the item at rank :math:`r` of row :math:`u` is relevant,
:math:`R_u` the relevant items of the row and :math:`r^*_u` the rank of its first relevant item:

.. math::
    \mathrm{Recall@}k = \frac{\sum_{r \le k} h_{u,r}}{|R_u|}, \quad
    \mathrm{Precision@}k = \frac{\sum_{r \le k} h_{u,r}}{k}, \quad
    \mathrm{NDCG@}k = \frac{\sum_{r \le k} h_{u,r} / \log_2(r+1)}
                          {\sum_{r \le \min(|R_u|, k)} 1 / \log_2(r+1)}

    \mathrm{MAP@}k = \frac{1}{\min(|R_u|, k)} \sum_{r \le k} h_{u,r}\, \mathrm{Precision@}r, \quad
    \mathrm{MRR@}k = \frac{[r^*_u \le k]}{r^*_u}

A metric is asked for by name, ``"NDCG@10"``; a name without a cut-off (``"MRR"``) is taken over
every column of the hits matrix (the full ranking when the matrix holds it). A cut-off beyond the
matrix's width counts the ranks the matrix has (Precision still divides by ``k``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

#: the metrics :func:`hit_metrics` knows
METRIC_KINDS = ("Recall", "Precision", "NDCG", "MAP", "MRR")


def parse_metric(name: str) -> tuple[str, int | None]:
    """``"NDCG@10"`` -> ``("NDCG", 10)``; ``"MRR"`` -> ``("MRR", None)``."""
    metric, _, cut = name.partition("@")
    if metric not in METRIC_KINDS or (cut and not (cut.isdigit() and int(cut) > 0)):
        raise ValueError(
            f"hit_metrics: '{name}' is not a metric; give one of {METRIC_KINDS} with a positive cut-off, "
            "e.g. 'NDCG@10' (or none: 'MRR' over the whole ranking)."
        )
    return metric, int(cut) if cut else None


def hit_metrics(
    hits: Tensor | np.ndarray, n_relevant: Tensor | np.ndarray, names: Sequence[str]
) -> dict[str, Tensor]:
    """Per-row values of the metrics ``names`` (float64), keyed by name in the order asked.

    Args:
        hits: ``[B, K]`` bool, whether the item at rank ``r = 1..K`` of each row is relevant.
        n_relevant: ``[B]`` number of relevant items of each row (at least one).
        names: metric names, ``"<metric>@<k>"`` or ``"<metric>"`` (see the module docstring).

    Shapes:
        - hits ``[B, K]``, n_relevant ``[B]`` -> each value ``[B]``
    """
    hits = torch.as_tensor(hits, dtype=torch.bool)
    n_rel = torch.as_tensor(n_relevant).to(torch.float64)
    if hits.dim() != 2 or hits.size(1) == 0 or n_rel.shape != hits.shape[:1]:
        raise ValueError(
            f"hit_metrics: hits {tuple(hits.shape)} and n_relevant {tuple(n_rel.shape)}; expected "
            "[B, K] with K >= 1 and [B]."
        )
    if bool((n_rel < 1).any()):
        raise ValueError("hit_metrics: a row has no relevant item; leave such rows out.")
    width = hits.size(1)
    parsed = {name: parse_metric(name) for name in names}
    kmax = min(max((k or width for _, k in parsed.values()), default=1), width)
    h = hits[:, :kmax].to(torch.float64)
    ranks = torch.arange(1, kmax + 1, dtype=torch.float64)
    discount = 1.0 / torch.log2(ranks + 1)
    cum = torch.cumsum(h, 1)
    dcg = torch.cumsum(h * discount, 1)
    ap = torch.cumsum(h * cum / ranks, 1)
    idcg = torch.cumsum(discount, 0)
    first = None
    out = {}
    for name, (metric, k) in parsed.items():
        k = k or width
        col = min(k, width) - 1
        ideal = torch.clamp(n_rel, max=float(k))
        if metric == "Recall":
            out[name] = cum[:, col] / n_rel
        elif metric == "Precision":
            out[name] = cum[:, col] / k
        elif metric == "NDCG":
            out[name] = dcg[:, col] / idcg[(ideal.long() - 1).clamp(max=kmax - 1)]
        elif metric == "MAP":
            out[name] = ap[:, col] / ideal
        else:
            if first is None:  # rank of the first relevant item over the whole matrix, 0 if none
                first = torch.where(hits.any(1), hits.to(torch.uint8).argmax(1) + 1, 0)
            found = (first > 0) & (first <= k)
            out[name] = torch.where(found, 1.0 / first.clamp(min=1).to(torch.float64), 0.0)
    return out

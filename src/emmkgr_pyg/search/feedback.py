r"""Pseudo-relevance feedback in an item space (Rocchio, 1971, positive part only): the top
:math:`k` items of a first-stage ranking stand for what the query means, and every item is scored by
its cosine with their mean,

.. math::
    f(q, i) = \cos\Big(\frac{1}{k} \sum_{j \in \mathrm{top}_k(q)} \hat{\mathbf{v}}_j,\ \mathbf{v}_i\Big),

a second ranking that :func:`with_feedback` fuses with the first by reciprocal rank fusion (weight
:math:`w` on the feedback ranking). The first stage's top ``keep`` results can be kept first, in
their order, so that a query whose first answer is already the one it names (a specific item:
one target) does not lose it to the first results' neighbours. Which space :math:`\mathbf{v}` is
what decides its worth: in E-MMKGR's learned item space (:math:`\mathbf{H}^{MM}` or
:math:`\mathbf{H}_{item}`) the expansion follows what the E-MMKG and the interactions put near the
first results; in the raw modality vectors it is classic dense feedback, the ablation that says
what the graph adds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..graph.knn import normalize_rows
from .fusion import RRF_K, is_weight, rrf
from .topk import top_k

#: ``search.feedback``: the space the first results are averaged in (or ``None``: no feedback)
FEEDBACK_SPACES = ("H_mm_item", "item", "raw")


def feedback_scores(scores: np.ndarray, space: np.ndarray, k: int) -> np.ndarray:
    r""":math:`f(q, i)` above for first-stage ``scores`` ``[B, N]`` and item vectors ``space``
    ``[N', d]`` (rows L2-normalised here; a zero row scores 0). Columns beyond ``N'`` (cold-start
    items of a widened index) get ``-inf``: the fusion ranks them by the first stage. Only ranked
    items (finite scores) are averaged; a query with none gets ``-inf`` everywhere."""
    _check(k)
    return _feedback(scores, normalize_rows(space), k)


def _whole(x: object) -> bool:
    """Whether ``x`` is a whole number (not a bool, a string or 2.5)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and int(x) == x


def _check(k: int, weight: float = 1.0, keep: int = 0) -> None:
    if not _whole(k) or k < 1:
        raise ValueError(f"feedback_k={k}: average at least one first-stage item (e.g. 5).")
    if not is_weight(weight):
        raise ValueError(f"feedback_weight={weight}: give a positive weight (or feedback=null).")
    if not _whole(keep) or keep < 0:
        raise ValueError(f"feedback_keep={keep}: give how many first results stay first (0: none).")


def _feedback(scores: np.ndarray, unit: np.ndarray, k: int) -> np.ndarray:
    """:func:`feedback_scores` over item vectors ``unit`` already L2-normalised."""
    scores = np.asarray(scores, dtype=np.float64)
    n = unit.shape[0]
    first = scores[:, :n]
    top = top_k(first, min(int(k), n))
    finite = np.isfinite(np.take_along_axis(first, top, 1))
    weights = finite / np.maximum(finite.sum(1, keepdims=True), 1)
    centroid = normalize_rows(np.einsum("bk,bkd->bd", weights, unit[top]).astype(np.float32))
    out = np.full(scores.shape, -np.inf, dtype=np.float64)
    out[:, :n] = centroid @ unit.T
    out[~finite.any(1)] = -np.inf
    return out


def with_feedback(
    first: Callable[..., np.ndarray],
    space: np.ndarray,
    k: int = 10,
    weight: float = 1.0,
    rrf_k: float = RRF_K,
    keep: int = 0,
) -> Callable[..., np.ndarray]:
    """A score function: the RRF of ``first``'s ranking (weight 1) and its feedback ranking in
    ``space`` (weight ``weight``), :func:`feedback_scores` with ``k`` first results (``space`` is
    normalised once, here); ``first``'s top ``keep`` ranked items stay on top in their order."""
    _check(k, weight, keep)
    unit = normalize_rows(space)

    def fn(batch: object) -> np.ndarray:
        s = first(batch)
        out = rrf([s, _feedback(s, unit, k)], rrf_k, [1.0, weight])
        if keep:
            top = top_k(np.asarray(s, dtype=np.float64), min(int(keep), s.shape[1]))
            ranked = np.isfinite(np.take_along_axis(s, top, 1))
            lift = out.max(1, keepdims=True) + np.arange(top.shape[1], 0, -1)[None]
            np.put_along_axis(out, top, np.where(ranked, lift, np.take_along_axis(out, top, 1)), 1)
        return out

    return fn

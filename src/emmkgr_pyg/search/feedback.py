r"""Pseudo-relevance feedback in an item space (Rocchio, 1971, positive part only): the top
:math:`k` items of a first-stage ranking stand for what the query means, and every item is scored by
its cosine with their mean,

.. math::
    f(q, i) = \cos\Big(\frac{1}{k} \sum_{j \in \mathrm{top}_k(q)} \hat{\mathbf{v}}_j,\ \mathbf{v}_i\Big),

a second ranking that :func:`with_feedback` fuses with the first by reciprocal rank fusion (weight
:math:`w` on the feedback ranking). Which space :math:`\mathbf{v}` is what decides its worth: in
E-MMKGR's learned item space (:math:`\mathbf{H}^{MM}` or :math:`\mathbf{H}_{item}`) the expansion
follows what the E-MMKG and the interactions put near the first results; in the raw modality
vectors it is classic dense feedback, the ablation that says what the graph adds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..graph.knn import normalize_rows
from .fusion import RRF_K, rrf
from .topk import top_k

#: ``search.feedback``: the space the first results are averaged in (or ``None``: no feedback)
FEEDBACK_SPACES = ("H_mm_item", "item", "raw")


def feedback_scores(scores: np.ndarray, space: np.ndarray, k: int) -> np.ndarray:
    r""":math:`f(q, i)` above for first-stage ``scores`` ``[B, N]`` and item vectors ``space``
    ``[N', d]`` (rows L2-normalised by this function; a zero row scores 0). Columns beyond ``N'``
    (cold-start items of a widened index) get ``-inf``: the fusion ranks them by the first stage.
    Only ranked items (finite scores) are averaged; a query with none gets ``-inf`` everywhere."""
    if k < 1:
        raise ValueError(f"feedback: k={k}; average at least one first-stage item.")
    scores = np.asarray(scores, dtype=np.float64)
    space = normalize_rows(np.asarray(space, dtype=np.float32))
    n = space.shape[0]
    first = scores[:, :n]
    top = top_k(first, min(int(k), n))
    finite = np.isfinite(np.take_along_axis(first, top, 1))
    weights = finite / np.maximum(finite.sum(1, keepdims=True), 1)
    centroid = normalize_rows(np.einsum("bk,bkd->bd", weights, space[top]).astype(np.float32))
    out = np.full(scores.shape, -np.inf, dtype=np.float64)
    out[:, :n] = centroid @ space.T
    out[~finite.any(1)] = -np.inf
    return out


def with_feedback(
    first: Callable[..., np.ndarray],
    space: np.ndarray,
    k: int = 10,
    weight: float = 1.0,
    rrf_k: float = RRF_K,
) -> Callable[..., np.ndarray]:
    """A score function: the RRF of ``first``'s ranking (weight 1) and its feedback ranking in
    ``space`` (weight ``weight``), :func:`feedback_scores` with ``k`` first results."""
    if weight <= 0:
        raise ValueError(f"feedback: weight={weight}; give a positive weight (or no feedback).")

    def fn(batch: object) -> np.ndarray:
        s = first(batch)
        return rrf([s, feedback_scores(s, space, k)], rrf_k, [1.0, weight])

    return fn

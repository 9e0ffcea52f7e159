r"""Reciprocal rank fusion (Cormack et al., SIGIR 2009) of full score matrices: each ranking
contributes :math:`w_r / (k + \mathrm{rank}_r(i))` to item :math:`i`,

.. math::
    s(q, i) = \sum_{r} \frac{w_r}{k + \mathrm{rank}_r(q, i)}

with ranks from 1, ties broken by item position, and items a ranking leaves out (score
``-inf``) contributing nothing. With unit weights this is ``ranx.fuse(method="rrf")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: the constant of reciprocal rank fusion (the paper's and ranx's default)
RRF_K = 60.0


def is_weight(x: object) -> bool:
    """Whether ``x`` can weigh a ranking: a positive number (not a bool, a string or 0)."""
    return isinstance(x, (int, float, np.number)) and not isinstance(x, bool) and x > 0


def ranks(scores: np.ndarray) -> np.ndarray:
    """``[B, N]`` scores -> ``[B, N]`` 1-based ranks (higher score first, ties by position);
    ``0`` where the score is ``-inf`` (not ranked)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")
    out = np.empty(scores.shape, dtype=np.int64)
    np.put_along_axis(out, order, np.arange(1, scores.shape[1] + 1)[None].repeat(len(scores), 0), 1)
    out[np.isneginf(scores)] = 0
    return out


def rrf(
    rankings: Sequence[np.ndarray], k: float = RRF_K, weights: Sequence[float] | None = None
) -> np.ndarray:
    """The reciprocal rank fusion of score matrices ``[B, N]`` (each a ranking of the same items),
    ``[B, N]``; ``weights`` default to 1 each."""
    if not rankings:
        raise ValueError("rrf: no ranking to fuse.")
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"rrf: {len(weights)} weights for {len(rankings)} rankings.")
    shape = np.shape(rankings[0])
    out = np.zeros(shape, dtype=np.float64)
    for w, s in zip(weights, rankings, strict=True):
        if np.shape(s) != shape:
            raise ValueError(f"rrf: rankings of shapes {shape} and {np.shape(s)}; give one score per item.")
        r = ranks(s)
        out += np.where(r > 0, w / (k + np.maximum(r, 1)), 0.0)
    return out

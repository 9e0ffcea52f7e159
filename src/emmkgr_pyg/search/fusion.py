r"""Fusion of full score matrices ``[B, N]`` (one ranking of the same items each).

Reciprocal rank fusion (Cormack et al., SIGIR 2009): each ranking contributes
:math:`w_r / (k + \mathrm{rank}_r(i))` to item :math:`i`,

.. math::
    s(q, i) = \sum_{r} \frac{w_r}{k + \mathrm{rank}_r(q, i)}

with ranks from 1, ties broken by item position, and items a ranking leaves out (score
``-inf``) contributing nothing. With unit weights this is ``ranx.fuse(method="rrf")``.

Z-score fusion (:func:`zscore`; CombSUM over zero-mean unit-variance scores, Montague & Aslam,
CIKM 2001): each ranking's scores standardised per query over the items it scores,

.. math::
    s(q, i) = \sum_{r} w_r \, \frac{s_r(q, i) - \mu_r(q)}{\sigma_r(q)},

``ranx.fuse(norm="zmuv", method="wsum")`` over full runs. Unlike RRF it keeps how far a result
stands out: a BM25 score far above the rest outweighs the dense ranking. Mind the scales: BM25's
scores are sparse (most items match no word of a query), so its best matches stand out whenever
anything matches; on Office's need-phrased dev queries BM25's top z-score averages 10.7 against
4.5 for the dense baseline's, as high on the queries BM25 misleads as on those it helps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: the constant of reciprocal rank fusion (the paper's and ranx's default)
RRF_K = 60.0
#: ``search.fusion``: how BM25 joins a first stage
FUSIONS = ("rrf", "zscore")


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
    weights = _weights("rrf", rankings, weights)
    out = np.zeros(np.shape(rankings[0]), dtype=np.float64)
    for w, s in zip(weights, rankings, strict=True):
        r = ranks(s)
        out += np.where(r > 0, w / (k + np.maximum(r, 1)), 0.0)
    return out


def zscore(rankings: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The weighted sum of per-query z-scores of score matrices ``[B, N]`` (module docstring):
    mean and population standard deviation over each row's finite scores (a deviation below 1e-9
    counts as 1e-9, as in ranx); an item a ranking leaves out (``-inf``) gets nothing from it, one
    every ranking leaves out stays ``-inf``. ``weights`` default to 1 each."""
    weights = _weights("zscore", rankings, weights)
    out = np.zeros(np.shape(rankings[0]), dtype=np.float64)
    scored = np.zeros(out.shape, dtype=bool)
    for w, s in zip(weights, rankings, strict=True):
        s = np.asarray(s, dtype=np.float64)
        finite = np.isfinite(s)
        n = np.maximum(finite.sum(1, keepdims=True), 1)
        x = np.where(finite, s, 0.0)
        mean = x.sum(1, keepdims=True) / n
        sd = np.sqrt((np.where(finite, x - mean, 0.0) ** 2).sum(1, keepdims=True) / n)
        out += w * np.where(finite, (x - mean) / np.maximum(sd, 1e-9), 0.0)
        scored |= finite
    out[~scored] = -np.inf
    return out


def fuse(
    method: str, rankings: Sequence[np.ndarray], k: float = RRF_K, weights: Sequence[float] | None = None
) -> np.ndarray:
    """:func:`rrf` (constant ``k``) or :func:`zscore` (``k`` unused) by name (:data:`FUSIONS`)."""
    if method == "rrf":
        return rrf(rankings, k, weights)
    if method == "zscore":
        return zscore(rankings, weights)
    raise ValueError(f"fusion={method}: choose one of {list(FUSIONS)}.")


def _weights(name: str, rankings: Sequence[np.ndarray], weights: Sequence[float] | None) -> list[float]:
    """``weights`` (1 each when ``None``), checked against ``rankings``: as many, one shape."""
    if not rankings:
        raise ValueError(f"{name}: no ranking to fuse.")
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{name}: {len(weights)} weights for {len(rankings)} rankings.")
    shape = np.shape(rankings[0])
    for s in rankings:
        if np.shape(s) != shape:
            raise ValueError(
                f"{name}: rankings of shapes {shape} and {np.shape(s)}; give one score per item."
            )
    return weights

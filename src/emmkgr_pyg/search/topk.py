"""Top-k selection on score matrices, shared by the item index and the vector baseline: results
come back as ``[B, k]`` scores and positions, padded with ``-inf`` / ``-1`` where fewer than ``k``
items qualify."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest scores per row, best first, ties by lower index."""
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        # argpartition picks any of the items tied at the k-th score: those rows, stably
        kth = np.take_along_axis(scores, part, 1).min(1, keepdims=True)
        for r in np.flatnonzero((scores >= kth).sum(1) > k):
            part[r] = np.argsort(-scores[r], kind="stable")[:k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    vals = np.take_along_axis(scores, part, 1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, 1).astype(np.int64)


def pad_top_k(scores: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad results to ``k`` columns with ``-1`` positions and ``-inf`` scores (a ``-1`` position
    already there gets a ``-inf`` score)."""
    pos = np.asarray(pos, dtype=np.int64)
    scores = np.where(pos >= 0, scores, -np.inf).astype(np.float32)
    if pos.shape[1] < k:
        extra = k - pos.shape[1]
        pos = np.concatenate([pos, np.full((pos.shape[0], extra), -1, np.int64)], 1)
        scores = np.concatenate([scores, np.full((scores.shape[0], extra), -np.inf, np.float32)], 1)
    return scores, pos

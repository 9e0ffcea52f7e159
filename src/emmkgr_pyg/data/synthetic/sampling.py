"""Vectorised draws the generator shares: one categorical per row, grouped Dirichlets, top-m per
row (Gumbel-top-k picks without replacement) and row blocks of a bounded size."""

from __future__ import annotations

import numpy as np


def sample_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One categorical draw per row of non-negative ``weights`` ([N, K])."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(1), weights.shape[1] - 1)


def group_dirichlet(rng: np.random.Generator, alpha: float, group: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of independent Dirichlet(alpha) draws within each group of columns."""
    g = rng.gamma(alpha, size=(n, len(group))) + 1e-30
    sums = g @ np.eye(int(group.max()) + 1)[group]
    return g / sums[:, group]


def chunks(n_rows: int, width: int, budget: int = 1 << 22) -> list[slice]:
    """Row slices so that a ``[rows, width]`` block holds about ``budget`` entries."""
    step = max(1, budget // max(width, 1))
    return [slice(s, min(s + step, n_rows)) for s in range(0, n_rows, step)]


def top_m(keys: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the ``m[r]`` largest keys of each row ``r`` (``1 <= m[r] <= width``)."""
    k = int(m.max())
    if k < keys.shape[1]:
        top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(keys.shape[1]), keys.shape)
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, 1), axis=1), 1)
    mask = np.arange(top.shape[1])[None, :] < m[:, None]
    return np.nonzero(mask)[0], top[mask]

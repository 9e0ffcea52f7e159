"""The MMRec splitting protocol, vectorised.

Per user, interactions are shuffled with a seeded generator. A user with fewer than 10 interactions
gets exactly one validation and one test interaction; a user with ``n >= 10`` gets ``int(0.2 n)``
held-out interactions, ``floor(half)`` of them for validation and the rest for test (so ``n = 15``
gives 12 / 1 / 2). At least one interaction always stays in training, so a user with 2 interactions
gets 1 / 0 / 1 and a user with one interaction keeps it for training.
"""

from __future__ import annotations

import numpy as np

from .dataset import TEST, TRAIN, VALID


def mmrec_split(user: np.ndarray, seed: int = 999) -> np.ndarray:
    """Assign every interaction to train / valid / test.

    Args:
        user: the user index of each interaction, shape ``[E]``.
        seed: the seed of the per-user shuffle (MMRec uses 999).

    Returns:
        ``int8`` array of shape ``[E]`` with ``TRAIN``, ``VALID`` or ``TEST``.
    """
    user = np.asarray(user, dtype=np.int64)
    rng = np.random.default_rng(seed)
    key = rng.random(len(user))
    order = np.lexsort((key, user))  # grouped by user, random order within a user
    counts = np.bincount(user, minlength=int(user.max(initial=-1)) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_user = user[order]
    rank = np.arange(len(user)) - starts[sorted_user]

    n = counts[sorted_user]
    holdout = np.where(n < 10, 2, (0.2 * n).astype(np.int64))
    holdout = np.minimum(holdout, n - 1)
    n_valid = np.where(n < 10, np.minimum(1, holdout - 1), holdout // 2)
    split_sorted = np.full(len(user), TRAIN, dtype=np.int8)
    split_sorted[rank < holdout] = TEST
    split_sorted[rank < n_valid] = VALID

    split = np.empty(len(user), dtype=np.int8)
    split[order] = split_sorted
    return split

import numpy as np
import pytest

from emmkgr_pyg.data.dataset import TEST, TRAIN, VALID
from emmkgr_pyg.data.split import mmrec_split


def _counts(split):
    return [int((split == s).sum()) for s in (TRAIN, VALID, TEST)]


@pytest.mark.parametrize(
    "n, expected",
    [
        (1, [1, 0, 0]),
        (2, [1, 0, 1]),
        (5, [3, 1, 1]),
        (9, [7, 1, 1]),
        (10, [8, 1, 1]),
        (15, [12, 1, 2]),
        (20, [16, 2, 2]),
        (27, [22, 2, 3]),
    ],
)
def test_per_user_rule(n, expected):
    # n < 10: one validation and one test item; n >= 10: int(0.2 n) held out, floor(half) valid
    split = mmrec_split(np.zeros(n, dtype=np.int64), seed=1)
    assert _counts(split) == expected


def test_users_are_split_independently_and_seeded():
    user = np.repeat(np.arange(50), np.arange(50) % 13 + 3)
    a, b, c = mmrec_split(user, 999), mmrec_split(user, 999), mmrec_split(user, 7)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    for u in range(50):
        n = int((user == u).sum())
        hold = 2 if n < 10 else int(0.2 * n)
        assert _counts(a[user == u]) == [
            n - hold,
            1 if n < 10 else hold // 2,
            hold - (1 if n < 10 else hold // 2),
        ]


def test_interleaved_users_keep_their_positions():
    rng = np.random.default_rng(0)
    user = rng.integers(0, 20, size=400)
    split = mmrec_split(user, 999)
    for u in range(20):
        n = int((user == u).sum())
        assert (split[user == u] == TRAIN).sum() == n - (2 if n < 10 else int(0.2 * n))

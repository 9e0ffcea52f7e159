"""The interaction draw in large leaves: a popularity-weighted pool per user instead of every item
(linear in the catalogue), checked against the exact Gumbel-top-k draw on the same world."""

from __future__ import annotations

import numpy as np
import pytest

from emmkgr_pyg.data.synthetic import SyntheticOptions
from emmkgr_pyg.data.synthetic import world as W
from emmkgr_pyg.data.synthetic.vocab import build_taxonomy

N_ITEMS = 6000


@pytest.fixture(scope="module")
def draws():
    """The same world drawn exactly and with pools (every leaf counts as large)."""
    opt = SyntheticOptions(n_users=6000, n_items=N_ITEMS, n_interactions=60000, image_dim=8)
    tax = build_taxonomy()
    items = W.draw_items(opt, tax)
    mp = pytest.MonkeyPatch()
    mp.setattr(W, "EXACT_LEAF_ITEMS", N_ITEMS)
    exact = W.draw_interactions(opt, tax, items)
    mp.setattr(W, "EXACT_LEAF_ITEMS", 16)
    mp.setattr(W, "POOL", 64)
    pooled = W.draw_interactions(opt, tax, items)
    mp.undo()
    return opt, items, exact, pooled


def test_pooled_draw_keeps_each_users_count_and_never_repeats_a_pair(draws):
    opt, _, exact, pooled = draws
    (ue, _), (up, ip) = exact, pooled
    assert len(up) == len(ue) == opt.n_interactions
    assert np.array_equal(np.bincount(up, minlength=opt.n_users), np.bincount(ue, minlength=opt.n_users))
    assert len(np.unique(up.astype(np.int64) * N_ITEMS + ip)) == len(up)
    assert np.all(np.diff(up) >= 0)  # grouped by user


def test_pooled_draw_keeps_the_leaf_tastes_and_the_popularity_curve(draws):
    _, items, (ue, ie), (up, ip) = draws
    # the leaf a user buys in is drawn before the pool: the same per (user, leaf) counts
    leaves = len(np.unique(items.leaf))
    exact_pairs = np.bincount(ue * leaves + items.leaf[ie], minlength=6000 * leaves)
    pooled_pairs = np.bincount(up * leaves + items.leaf[ip], minlength=6000 * leaves)
    assert np.array_equal(exact_pairs, pooled_pairs)
    # popularity: the pool's repeats carry it, so the head keeps its share (the repeats merged
    # without their log-count would halve it) and item counts follow the exact draw's
    ce, cp = np.bincount(ie, minlength=N_ITEMS), np.bincount(ip, minlength=N_ITEMS)
    head = np.argsort(items.log_popularity)[::-1][: N_ITEMS // 100]
    share_e, share_p = ce[head].sum() / len(ie), cp[head].sum() / len(ip)
    assert share_p == pytest.approx(share_e, rel=0.25)
    assert np.corrcoef(ce, cp)[0, 1] > 0.9
    assert np.corrcoef(np.log1p(cp), items.log_popularity)[0, 1] > 0.5


def test_popularity_pool_draws_by_popularity_and_sorts_each_row():
    log_pop = np.log(np.array([8.0, 1.0, 1e-12, 4.0, 3.0], dtype=np.float32))
    pool = W.popularity_pool(np.random.default_rng(0), log_pop, 4000)
    assert pool.shape == (4000, W.POOL)
    assert np.all(np.diff(pool, axis=1) >= 0)
    freq = np.bincount(pool.ravel(), minlength=5) / pool.size
    np.testing.assert_allclose(freq, np.exp(log_pop) / np.exp(log_pop).sum(), atol=2e-3)
    # the draws numpy's choice makes from the same generator state, sorted (the docstring's claim)
    p = np.exp(log_pop - log_pop.max()).astype(np.float64)
    ref = np.sort(np.random.default_rng(0).choice(5, size=(4000, W.POOL), p=p / p.sum()), axis=1)
    assert np.array_equal(pool, ref)

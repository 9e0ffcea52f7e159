"""The priors of train.score_prior and train.interaction_prior against the dense formulas of their
module docstring."""

from __future__ import annotations

import pytest
import torch

from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.nn.recommender import LightGCN
from emmkgr_pyg.nn.score_prior import InteractionPrior, NeighbourhoodPrior, zscore_rows

USER = torch.tensor([0, 0, 1, 2, 2, 2, 3])
ITEM = torch.tensor([0, 2, 1, 0, 3, 4, 4])
# item-item graph, neighbour -> item (as item_neighbors gives it), with weights; user 4 has no items
EDGES = torch.tensor([[1, 2, 0, 4, 3, 1], [0, 0, 1, 2, 4, 4]])
WEIGHTS = torch.tensor([0.5, 0.25, 1.0, 2.0, 0.75, 0.1])


def dense_prior(users: torch.Tensor) -> torch.Tensor:
    """p_ui = sum_j x_uj A_ij, A_ij the weight of neighbour j of item i, written out."""
    x = torch.zeros(5, 5, dtype=torch.float64)
    x[USER, ITEM] = 1.0
    a = torch.zeros(5, 5, dtype=torch.float64)
    for (j, i), w in zip(EDGES.t().tolist(), WEIGHTS.tolist(), strict=True):
        a[i, j] += w
    return torch.stack([sum(x[u, j] * a[:, j] for j in range(5)) for u in users.tolist()])


def dense_interaction_prior(users: torch.Tensor, user=USER, item=ITEM) -> torch.Tensor:
    """q_u = x_u R~^T R~, R~ = D_U^-1/2 R D_I^-1/2 on the distinct interactions, written out."""
    r = torch.zeros(5, 5, dtype=torch.float64)
    r[user, item] = 1.0  # an indicator: a repeated interaction counts once
    du, di = r.sum(1), r.sum(0)
    rt = torch.zeros_like(r)
    for u in range(5):
        for i in range(5):
            if r[u, i]:
                rt[u, i] = 1.0 / (du[u] * di[i]).sqrt()
    return torch.stack([r[u] @ rt.t() @ rt for u in users.tolist()])


def dense_z(s: torch.Tensor) -> torch.Tensor:
    mean = s.mean(1, keepdim=True)
    std = ((s - mean) ** 2).mean(1, keepdim=True).sqrt()
    return torch.where(std > 0, (s - mean) / std.clamp(min=1e-300), torch.zeros_like(s))


class WithGraph(LightGCN):
    """LightGCN with a fixed item-item graph (the prior only needs item_neighbors)."""

    def item_neighbors(self):
        return EDGES, WEIGHTS


@pytest.fixture
def inter() -> InteractionGraph:
    return InteractionGraph(5, 5, USER, ITEM)


def test_zscore_rows_by_hand():
    s = torch.tensor([[1.0, 2.0, 3.0, 6.0], [4.0, 4.0, 4.0, 4.0]])
    z = zscore_rows(s)
    torch.testing.assert_close(z[0], (s[0] - 3.0) / (3.5**0.5))
    assert torch.equal(z[1], torch.zeros(4))  # a constant row carries no preference


def test_prior_matches_the_dense_formula(inter):
    prior = NeighbourhoodPrior(inter, EDGES, WEIGHTS)
    users = torch.tensor([2, 4, 0, 3])  # any order; user 4 has no training item
    got = prior(users).double()
    torch.testing.assert_close(got, dense_prior(users))
    assert torch.equal(got[1], torch.zeros(5, dtype=torch.float64))
    # by hand: user 0 has items 0 and 2 (item 0 lists 2 at .25, item 1 lists 0 at 1); user 2 has
    # 0, 3 and 4 (item 1 lists 0, item 2 lists 4 at 2, item 4 lists 3 at .75)
    assert got[2].tolist() == pytest.approx([0.25, 1.0, 0.0, 0.0, 0.0])
    assert got[0].tolist() == pytest.approx([0.0, 1.0, 2.0, 0.0, 0.75])
    unweighted = NeighbourhoodPrior(inter, EDGES, None)(torch.tensor([0]))
    assert unweighted.tolist() == [[1.0, 1.0, 0.0, 0.0, 0.0]]  # item 0 lists 2, item 1 lists 0


def test_a_repeated_interaction_votes_once():
    # user 0 has item 2 twice: x_u is an indicator, so the prior is the dense formula's
    twice = InteractionGraph(5, 5, torch.cat([USER, torch.tensor([0])]), torch.cat([ITEM, torch.tensor([2])]))
    users = torch.tensor([0, 2])
    got = NeighbourhoodPrior(twice, EDGES, WEIGHTS)(users).double()
    torch.testing.assert_close(got, dense_prior(users))


def test_score_fuses_z_scores_and_weight_zero_is_the_plain_score(inter):
    torch.manual_seed(0)
    model = WithGraph(inter, dim=4)
    emb = model.embed()
    users = torch.tensor([1, 0, 4])
    plain = model.score(emb, users)
    torch.testing.assert_close(plain, emb.user[users] @ emb.item.t())
    model.set_score_prior(0.3, inter)
    fused = model.score(emb, users).double()
    ref = dense_z((emb.user[users] @ emb.item.t()).double()) + 0.3 * dense_z(dense_prior(users))
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-5)
    model.set_score_prior(0.0)  # off again: exactly the embedding score
    assert torch.equal(model.score(emb, users), plain)


def test_a_model_without_an_item_graph_refuses(inter):
    model = LightGCN(inter, dim=4)
    model.set_score_prior(0.0, inter)  # none asked: fine
    with pytest.raises(ValueError, match=r"LightGCN has no item-item graph for train.score_prior"):
        model.set_score_prior(0.1, inter)
    with pytest.raises(ValueError, match=r"must be >= 0, got -1"):
        WithGraph(inter, dim=4).set_score_prior(-1, inter)


def test_interaction_prior_matches_the_dense_formula(inter):
    users = torch.tensor([2, 4, 0, 3])
    got = InteractionPrior(inter)(users).double()
    torch.testing.assert_close(got, dense_interaction_prior(users))
    assert torch.equal(got[1], torch.zeros(5, dtype=torch.float64))  # user 4: no items, no vote
    # by hand, user 3 (item 4): item 4's users are 2 (degree 3) and 3 (degree 1), item 4 has degree 2;
    # q_3i = sum_v R~_v4 R~_vi: via user 3, 1/(1*2) to item 4; via user 2, 1/(3*sqrt(2*d_i)) to 0, 3, 4
    r2 = 2**0.5
    expect = [1 / (3 * r2 * r2), 0.0, 0.0, 1 / (3 * r2), 1 / 2 + 1 / (3 * 2)]
    assert got[3].tolist() == pytest.approx(expect)
    # a repeated interaction changes neither the indicator nor the degrees
    twice = InteractionGraph(5, 5, torch.cat([USER, torch.tensor([2])]), torch.cat([ITEM, torch.tensor([4])]))
    torch.testing.assert_close(InteractionPrior(twice)(users).double(), dense_interaction_prior(users))


def test_score_fuses_both_priors_and_needs_no_item_graph_for_the_interaction_prior(inter):
    torch.manual_seed(0)
    model = WithGraph(inter, dim=4)
    emb = model.embed()
    users = torch.tensor([1, 0, 4, 2])
    plain = (emb.user[users] @ emb.item.t()).double()
    model.set_score_prior(0.3, inter, 0.7)
    ref = dense_z(plain) + 0.3 * dense_z(dense_prior(users)) + 0.7 * dense_z(dense_interaction_prior(users))
    torch.testing.assert_close(model.score(emb, users).double(), ref, rtol=1e-5, atol=1e-5)
    model.set_score_prior(0.0, inter, 0.7)  # the interaction prior alone
    ref = dense_z(plain) + 0.7 * dense_z(dense_interaction_prior(users))
    torch.testing.assert_close(model.score(emb, users).double(), ref, rtol=1e-5, atol=1e-5)
    plain_model = LightGCN(inter, dim=4)  # no item-item graph: the interaction prior still works
    plain_model.set_score_prior(0.0, inter, 1.0)
    assert plain_model.interaction_prior is not None and plain_model.score_prior is None
    with pytest.raises(ValueError, match=r"interaction prior weight must be >= 0, got -0.5"):
        plain_model.set_score_prior(0.0, inter, -0.5)


def test_a_model_that_scores_otherwise_has_its_scores_fused(inter):
    class Negated(WithGraph):  # a model with its own scorer overrides embedding_scores only
        def embedding_scores(self, emb, users):
            return -(emb.user[users] @ emb.item.t())

    torch.manual_seed(0)
    model = Negated(inter, dim=4)
    emb = model.embed()
    users = torch.tensor([0, 2])
    own = -(emb.user[users] @ emb.item.t())
    assert torch.equal(model.score(emb, users), own)
    model.set_score_prior(0.3, inter, 0.5)
    ref = (
        dense_z(own.double())
        + 0.3 * dense_z(dense_prior(users))
        + 0.5 * dense_z(dense_interaction_prior(users))
    )
    torch.testing.assert_close(model.score(emb, users).double(), ref, rtol=1e-5, atol=1e-5)

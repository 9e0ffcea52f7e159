"""The recommender interface and LightGCN: embeddings against a dense reference, losses against hand
formulas (E-MMKGR: test_emmkgr.py)."""

from __future__ import annotations

import pytest
import torch

from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.nn.recommender import Embeddings, LightGCN

USER = torch.tensor([0, 0, 1, 2, 2, 2, 3])
ITEM = torch.tensor([0, 2, 1, 0, 3, 4, 4])


@pytest.fixture
def inter() -> InteractionGraph:
    return InteractionGraph(4, 5, USER, ITEM)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_lightgcn_matches_dense_reference(inter, layers, dense_lightgcn):
    torch.manual_seed(0)
    model = LightGCN(inter, dim=8, num_layers=layers)
    emb = model.embed()
    assert isinstance(emb, Embeddings) and emb.extra == {}
    assert emb.user.shape == (4, 8) and emb.item.shape == (5, 8)
    ref_u, ref_i = dense_lightgcn(model.ids.user.weight, model.ids.item.weight, USER, ITEM, layers)
    assert (emb.user.double() - ref_u).abs().max() < 1e-5
    assert (emb.item.double() - ref_i).abs().max() < 1e-5
    scores = model.score(emb, torch.tensor([3, 1]))
    assert scores.shape == (2, 5)
    torch.testing.assert_close(scores, emb.user[[3, 1]] @ emb.item.t())


def test_interaction_graph_edges(inter):
    ei = inter.edge_index()
    assert ei.shape == (2, 14) and inter.num_nodes == 9
    pairs = {(int(s), int(d)) for s, d in ei.t()}
    expected = {(int(u), int(i) + 4) for u, i in zip(USER, ITEM, strict=True)}
    assert pairs == expected | {(d, s) for s, d in expected}


def test_lightgcn_bpr_and_reg(inter):
    torch.manual_seed(0)
    model = LightGCN(inter, dim=4, reg_weight=0.3)
    emb = model.embed()
    users, pos, neg = torch.tensor([0, 2, 3]), torch.tensor([2, 3, 4]), torch.tensor([1, 1, 0])
    losses = model.rec_losses(emb, users, pos, neg)
    assert set(losses) == {"bpr", "reg"}
    bpr = (
        sum(
            -torch.log(torch.sigmoid(emb.user[u] @ emb.item[p] - emb.user[u] @ emb.item[n]))
            for u, p, n in zip(users, pos, neg, strict=True)
        )
        / 3
    )
    torch.testing.assert_close(losses["bpr"], bpr)
    ego = [model.ids.user.weight[users], model.ids.item.weight[pos], model.ids.item.weight[neg]]
    # the default is MMRec's EmbLoss: the sum of the (not squared) norms over the batch size
    norms = sum(e.pow(2).sum().sqrt() for e in ego)
    torch.testing.assert_close(losses["reg"], 0.3 * norms / 3)
    squared = LightGCN(inter, dim=4, reg_weight=0.3, reg_form="squared")
    squared.load_state_dict(model.state_dict())
    sq = sum(e.pow(2).sum() for e in ego)
    torch.testing.assert_close(squared.rec_losses(emb, users, pos, neg)["reg"], 0.3 * 0.5 * sq / 3)
    with pytest.raises(ValueError, match="LightGCN: reg_form 'l1'"):
        LightGCN(inter, dim=4, reg_form="l1")
    no_reg = LightGCN(inter, dim=4, reg_weight=0.0)
    assert set(no_reg.rec_losses(no_reg.embed(), users, pos, neg)) == {"bpr"}
    assert model.kg_losses(emb, None) == {}
    assert set(model.export_embeddings(emb)) == {"item", "user"}


def test_lightgcn_softmax_with_k_negatives_names_the_term(inter):
    torch.manual_seed(0)
    model = LightGCN(inter, dim=4, reg_weight=0.3)
    model.set_rec_loss("softmax", 0.5)
    emb = model.embed()
    users, pos = torch.tensor([0, 2, 3]), torch.tensor([2, 3, 4])
    neg = torch.tensor([[1, 0], [1, 4], [0, 1]])
    losses = model.rec_losses(emb, users, pos, neg)
    assert set(losses) == {"softmax", "reg"}
    rows = []
    for u, p, ns in zip(users, pos, neg, strict=True):
        scores = torch.stack([emb.user[u] @ emb.item[i] for i in [p, *ns]]) / 0.5
        rows.append(-torch.log(scores.exp()[0] / scores.exp().sum()))
    torch.testing.assert_close(losses["softmax"], sum(rows) / 3)
    ego = [model.ids.user.weight[users], model.ids.item.weight[pos], model.ids.item.weight[neg]]
    torch.testing.assert_close(losses["reg"], 0.3 * sum(e.pow(2).sum().sqrt() for e in ego) / 3)
    with pytest.raises(ValueError, match="train.rec_loss: 'hinge' is not one of"):
        model.set_rec_loss("hinge")
    with pytest.raises(ValueError, match="train.rec_temperature must be positive"):
        model.set_rec_loss("softmax", 0.0)


def test_lightgcn_reset_changes_every_parameter(inter):
    model = LightGCN(inter, dim=4)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    model.reset_parameters()
    for k, v in model.named_parameters():
        assert not torch.equal(before[k], v), k


def test_pruned_lightgcn_trains_on_the_epochs_pruned_graph_and_evaluates_on_all(inter, dense_lightgcn):
    torch.manual_seed(0)
    model = LightGCN(inter, dim=8, num_layers=2, prune_ratio=0.5)
    model.train()
    emb = model.embed()
    ei = model.pruned_edge_index
    u, i = ei[0, ei[0] < 4], ei[1, ei[0] < 4] - 4  # the kept user -> item edges
    assert u.numel() == max(1, int(len(USER) * 0.5))
    assert set(zip(u.tolist(), i.tolist(), strict=True)) <= set(
        zip(USER.tolist(), ITEM.tolist(), strict=True)
    )
    ref_u, ref_i = dense_lightgcn(model.ids.user.weight, model.ids.item.weight, u, i, 2)
    assert (emb.user.double() - ref_u).abs().max() < 1e-5 and (emb.item.double() - ref_i).abs().max() < 1e-5
    assert torch.equal(model.pruned_edge_index, ei)  # the same graph for the whole epoch
    model.embed()
    assert torch.equal(model.pruned_edge_index, ei)
    draws = set()
    for _ in range(20):  # every epoch draws again
        model.on_epoch_start()
        model.embed()
        draws.add(tuple(model.pruned_edge_index.flatten().tolist()))
    assert len(draws) > 1
    model.eval()  # evaluation: the whole graph
    full_u, full_i = dense_lightgcn(model.ids.user.weight, model.ids.item.weight, USER, ITEM, 2)
    emb = model.embed()
    assert (emb.user.double() - full_u).abs().max() < 1e-5
    with pytest.raises(ValueError, match="prune_ratio must be in"):
        LightGCN(inter, prune_ratio=1.0)

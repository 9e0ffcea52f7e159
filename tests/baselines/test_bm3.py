"""BM3: bootstrapped targets (stop-gradient, dropout) and the loss against MMRec's formula; a smoke run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData

from emmkgr_pyg.baselines import BM3
from emmkgr_pyg.baselines.bm3 import bootstrap_target
from emmkgr_pyg.graph import InteractionGraph
from emmkgr_pyg.nn import LightGCN

USER = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 4, 4])
ITEM = torch.tensor([0, 1, 2, 0, 3, 0, 1, 4, 5, 6])


def hand_kg(n_items: int = 7, seed: int = 0) -> HeteroData:
    """Three modalities with random features; ``title`` lacks items 0 and 3."""
    g = torch.Generator().manual_seed(seed)
    kg = HeteroData()
    kg["item"].num_nodes = n_items
    for m, dim in {"text": 5, "image": 4, "title": 3}.items():
        items = torch.tensor([i for i in range(n_items) if m != "title" or i not in (0, 3)])
        kg[m].x = torch.randn(items.numel(), dim, generator=g)
        kg[m].item = items
    return kg


def make_model(dropout: float = 0.0, **kw) -> BM3:
    torch.manual_seed(0)
    return BM3(InteractionGraph(5, 7, USER, ITEM), hand_kg(), dim=6, dropout=dropout, **kw)


def mmrec_loss(model: BM3, users, items, detach: bool = True):
    """MMRec's BM3.calculate_loss written out (dropout 0), on full tables as the reference does."""
    u_ori, i_ori = model.online()
    with torch.no_grad() if detach else torch.enable_grad():
        u_target, i_target = u_ori.clone(), i_ori.clone()
    u_online, i_online = model.predictor(u_ori)[users], model.predictor(i_ori)[items]
    u_target, i_target = u_target[users], i_target[items]
    cl = 0.0
    for m in model.features.names:
        feat = model.features.proj[m](model.features.tables[m].weight)
        target = feat.detach()[items] if detach else feat[items]
        online = model.predictor(feat)[items]
        cl = cl + (1 - F.cosine_similarity(online, i_target, dim=-1).mean())
        cl = cl + (1 - F.cosine_similarity(online, target, dim=-1).mean())
    rec = (1 - F.cosine_similarity(u_online, i_target, dim=-1).mean()) + (
        1 - F.cosine_similarity(i_online, u_target, dim=-1).mean()
    )
    reg = (u_ori.norm(p=2) + i_ori.norm(p=2)) / i_ori.shape[0]
    return rec + model.reg_weight * reg + model.cl_weight * cl


def test_bootstrap_target_stops_gradient_and_drops_out():
    x = torch.randn(400, 50, requires_grad=True)
    torch.manual_seed(0)
    t = bootstrap_target(x * 2, 0.3)
    assert not t.requires_grad and t.grad_fn is None
    dropped = t == 0
    assert abs(dropped.float().mean().item() - 0.3) < 0.02
    torch.testing.assert_close(t[~dropped], (x * 2).detach()[~dropped] / 0.7)


def test_loss_matches_mmrec_formula_and_targets_carry_no_gradient():
    model = make_model(reg_weight=0.1, cl_weight=2.0)
    users, items = USER[:6], ITEM[:6]
    params = [p for p in model.parameters() if p.requires_grad]
    losses = model.rec_losses(model.embed(), users, items, neg=None)
    assert set(losses) == {"rec", "align", "mask", "reg"}
    ours = torch.autograd.grad(sum(losses.values()), params)
    ref_loss = mmrec_loss(model, users, items)
    torch.testing.assert_close(sum(losses.values()), ref_loss)
    ref = torch.autograd.grad(ref_loss, params)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b)
    # without the stop-gradient the gradients differ: the test above can tell them apart
    leaky = torch.autograd.grad(mmrec_loss(model, users, items, detach=False), params)
    assert any(not torch.allclose(a, b) for a, b in zip(ours, leaky, strict=True))


def test_no_negatives_and_predicted_scores():
    model = make_model()
    assert model.needs_features and not model.needs_modal_edges and not model.has_kg_loss
    emb = model.embed()
    with_neg = model.rec_losses(emb, USER, ITEM, torch.tensor([6] * 10))
    without = model.rec_losses(emb, USER, ITEM, None)
    for k in with_neg:
        torch.testing.assert_close(with_neg[k], without[k])
    # scores are p(h_u) . p(h_i); h is LightGCN plus the item id embedding
    ref = LightGCN(InteractionGraph(5, 7, USER, ITEM), dim=6, num_layers=1)
    ref.ids.user.weight.data.copy_(model.ids.user.weight)
    ref.ids.item.weight.data.copy_(model.ids.item.weight)
    h_user, h_item = ref.propagate()
    h_item = h_item + model.ids.item.weight
    expected = model.predictor(h_user)[[1, 3]] @ model.predictor(h_item).t()
    torch.testing.assert_close(model.score(emb, torch.tensor([1, 3])), expected)
    with pytest.raises(ValueError, match="dropout"):
        make_model(dropout=1.0)


@pytest.fixture(scope="module")
def small(synthetic_shop):
    # BM3 has no negatives: on 2,000 interactions it stays near its initial ranking, so it gets a
    # (still small) catalogue with enough interactions to learn from in a few epochs
    return synthetic_shop(600, 300, 8000, "small")


def test_smoke_training_beats_random(small, train, random_recall):
    _, state, valid = train(BM3, small, epochs=8, batch_size=512, lr=5e-3, patience=8)
    names = {k for k in state.history[0] if k.startswith("loss/")}
    assert names == {"loss/rec", "loss/align", "loss/mask", "loss/reg"}
    total = [sum(v for k, v in r.items() if k.startswith("loss/")) for r in state.history]
    recall = [r["valid/Recall@20"] for r in state.history]
    assert total[-1] < total[0]
    assert recall[-1] > 1.5 * recall[0]
    assert state.best_metric > 2 * random_recall(valid, 20)

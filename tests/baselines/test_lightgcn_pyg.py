"""LightGCNPyG: PyG's stock LightGCN gives our LightGCN's embeddings and losses; a smoke run."""

from __future__ import annotations

import pytest
import torch

from emmkgr_pyg.baselines import LightGCNPyG
from emmkgr_pyg.graph import InteractionGraph
from emmkgr_pyg.nn import LightGCN

USER = torch.tensor([0, 0, 1, 2, 2, 2, 3])
ITEM = torch.tensor([0, 2, 1, 0, 3, 4, 4])


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_same_embeddings_and_losses_as_our_lightgcn(layers):
    inter = InteractionGraph(4, 5, USER, ITEM)
    torch.manual_seed(0)
    ours = LightGCN(inter, dim=8, num_layers=layers, reg_weight=0.3)
    pyg = LightGCNPyG(inter, dim=8, num_layers=layers, reg_weight=0.3)
    with torch.no_grad():
        pyg.net.embedding.weight.copy_(torch.cat([ours.ids.user.weight, ours.ids.item.weight]))
    a, b = ours.embed(), pyg.embed()
    assert b.user.shape == (4, 8) and b.item.shape == (5, 8)
    torch.testing.assert_close(b.user, a.user)
    torch.testing.assert_close(b.item, a.item)
    users, pos, neg = torch.tensor([0, 2, 3]), torch.tensor([2, 3, 4]), torch.tensor([1, 1, 0])
    la, lb = ours.rec_losses(a, users, pos, neg), pyg.rec_losses(b, users, pos, neg)
    assert set(lb) == {"bpr", "reg"}
    for k in la:
        torch.testing.assert_close(lb[k], la[k])
    torch.testing.assert_close(pyg.score(b, torch.tensor([1, 3])), ours.score(a, torch.tensor([1, 3])))


def test_smoke_training_beats_random(tiny, train, random_recall):
    # the shop's interactions only: LightGCNPyG accepts the E-MMKG and ignores it
    _, state, valid = train(LightGCNPyG, tiny, epochs=5, batch_size=256, lr=1e-2, patience=5)
    total = [sum(v for k, v in r.items() if k.startswith("loss/")) for r in state.history]
    assert total[-1] < total[0]
    assert state.best_metric > 1.5 * random_recall(valid, 20)

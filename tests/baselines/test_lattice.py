"""LATTICE: the learned item-item graph and its gradients against the dense formula; a smoke run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData

from emmkgr_pyg.baselines import LATTICE
from emmkgr_pyg.baselines.lattice import random_walk_self_loop_norm
from emmkgr_pyg.graph import InteractionGraph

USER = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 4, 4])
ITEM = torch.tensor([0, 1, 2, 0, 3, 0, 1, 4, 5, 8])


def hand_kg(n_items: int = 9, seed: int = 0) -> HeteroData:
    """Two modalities that every item has, random features (no ties)."""
    g = torch.Generator().manual_seed(seed)
    kg = HeteroData()
    kg["item"].num_nodes = n_items
    for m, dim in {"text": 5, "image": 4}.items():
        kg[m].x = torch.randn(n_items, dim, generator=g)
        kg[m].item = torch.arange(n_items)
    return kg


def dense_topk_graph(x: torch.Tensor, k: int) -> torch.Tensor:
    """MMRec's build_sim + build_knn_neighbourhood: dense cosine, keep each row's top-k values."""
    xn = x / x.norm(dim=1, keepdim=True)
    sim = xn @ xn.t()
    val, idx = sim.topk(k, dim=-1)
    return torch.zeros_like(sim).scatter(-1, idx, val)


def dense_laplacian(a: torch.Tensor) -> torch.Tensor:
    """MMRec's compute_normalized_laplacian: D^-1/2 A D^-1/2 with D the row sums."""
    d = a.sum(-1).pow(-0.5)
    return d[:, None] * a * d[None, :]


def dense_item_adj(model: LATTICE, kg: HeteroData, k: int, lam: float) -> torch.Tensor:
    """LATTICE's item graph the dense way (MMRec's forward with build_item_graph=True)."""
    alpha = torch.softmax(model.modal_weight, 0)
    mods = list(enumerate(model.modalities))
    learned = sum(alpha[j] * dense_topk_graph(model.features(m), k) for j, m in mods)
    original = sum(alpha[j] * dense_laplacian(dense_topk_graph(kg[m].x, k)) for j, m in mods)
    return (1 - lam) * dense_laplacian(learned) + lam * original


def make_model(kg: HeteroData, k: int = 3, lam: float = 0.7) -> LATTICE:
    torch.manual_seed(0)
    inter = InteractionGraph(5, 9, USER, ITEM)
    model = LATTICE(inter, kg, dim=6, feat_embed_dim=4, knn_k=k, lambda_coeff=lam)
    with torch.no_grad():
        model.modal_weight.copy_(torch.tensor([0.4, -0.3]))  # non-uniform modality weights
    return model


def test_learned_graph_matches_dense_formula():
    kg = hand_kg()
    model = make_model(kg)
    ei, ew = model.item_graph()
    ours = torch.zeros(9, 9).index_put((ei[1], ei[0]), ew, accumulate=True)
    torch.testing.assert_close(ours, dense_item_adj(model, kg, 3, 0.7))
    assert ei.size(1) == 2 * 2 * 9 * 3  # learned + initial, 2 modalities, 9 items, k = 3


def test_learned_graph_gradients_match_dense_formula():
    kg = hand_kg()
    model = make_model(kg)
    target = torch.randn(9, 6, generator=torch.Generator().manual_seed(1))
    params = [model.modal_weight, model.ids.item.weight, model.features.tables["text"].weight]
    params += [model.features.proj[m].weight for m in model.modalities]
    h = model.item_graph_embeddings()
    ours = torch.autograd.grad((F.normalize(h, dim=1) * target).sum(), params)
    dense_h = dense_item_adj(model, kg, 3, 0.7) @ model.ids.item.weight
    torch.testing.assert_close(h, dense_h)
    ref = torch.autograd.grad((F.normalize(dense_h, dim=1) * target).sum(), params)
    for a, b in zip(ours, ref, strict=True):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b)


def test_neighbours_reselected_per_epoch_and_in_eval():
    kg = hand_kg()
    model = make_model(kg)
    model.train()
    model.embed()
    first = model.learned_edge_index
    with torch.no_grad():
        model.features.proj["text"].weight.mul_(-1).add_(torch.randn(4, 5))
    model.embed()
    assert model.learned_edge_index is first  # fixed within an epoch
    model.on_epoch_start()  # the trainer's per-epoch hook
    model.embed()
    ei, _ = model.item_graph()
    expected = dense_item_adj(model, kg, 3, 0.7)
    ours = torch.zeros(9, 9).index_put((ei[1], ei[0]), model.item_graph()[1], accumulate=True)
    torch.testing.assert_close(ours, expected)
    model.eval()
    with torch.no_grad():
        emb = model.embed()
    h = dense_item_adj(model, kg, 3, 0.7) @ model.ids.item.weight
    torch.testing.assert_close(emb.extra["H_item_graph"], h)


def test_user_item_operator_is_random_walk_with_self_loops():
    inter = InteractionGraph(5, 9, USER, ITEM)
    ei, ew = random_walk_self_loop_norm(inter.edge_index(), inter.num_nodes)
    a = torch.zeros(14, 14)
    a[USER, ITEM + 5] = 1.0
    a[ITEM + 5, USER] = 1.0
    a = a + torch.eye(14)
    expected = a / a.sum(1, keepdim=True)
    torch.testing.assert_close(torch.zeros(14, 14).index_put((ei[1], ei[0]), ew, accumulate=True), expected)


def test_losses_and_bad_settings():
    model = make_model(hand_kg())
    losses = model.rec_losses(model.embed(), USER[:4], ITEM[:4], torch.tensor([5, 6, 7, 7]))
    assert set(losses) == {"bpr", "reg"} and all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match="lambda_coeff"):
        LATTICE(InteractionGraph(5, 9, USER, ITEM), hand_kg(), lambda_coeff=1.5)


def test_smoke_training_beats_random(tiny, train, random_recall):
    model, state, valid = train(LATTICE, tiny, epochs=5, batch_size=256, lr=1e-2, patience=5)
    total = [sum(v for k, v in r.items() if k.startswith("loss/")) for r in state.history]
    assert {"loss/bpr", "loss/reg"} <= set(state.history[0])
    assert total[-1] < total[0]
    assert state.best_metric > 1.5 * random_recall(valid, 20)
    assert model.modal_weight.grad is not None and model.modal_weight.grad.abs().sum() > 0

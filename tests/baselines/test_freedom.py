"""FREEDOM: degree-sensitive pruning and the frozen kNN graph against dense references; a smoke run."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import HeteroData

from emmkgr_pyg.baselines import FREEDOM
from emmkgr_pyg.baselines.common import dense_modal_features, resolve_modal_weights
from emmkgr_pyg.graph import InteractionGraph
from emmkgr_pyg.graph.interaction import degree_sensitive_prune, degree_sensitive_weights
from emmkgr_pyg.nn import LightGCN

USER = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 4, 4])
ITEM = torch.tensor([0, 1, 2, 0, 3, 0, 1, 4, 5, 0])


def hand_kg(n_items: int = 8, seed: int = 0) -> HeteroData:
    """Three modalities with random features; each lacks one item (so no two rows tie)."""
    g = torch.Generator().manual_seed(seed)
    kg = HeteroData()
    kg["item"].num_nodes = n_items
    for j, (m, dim) in enumerate({"text": 5, "image": 4, "title": 3}.items()):
        items = torch.tensor([i for i in range(n_items) if i != j])
        kg[m].x = torch.randn(items.numel(), dim, generator=g)
        kg[m].item = items
    return kg


def dense_knn_graph(x: torch.Tensor, k: int) -> torch.Tensor:
    """MMRec's FREEDOM graph written the obvious way: dense cosine, top-k (itself included),
    binary, D^-1/2 A D^-1/2 with D the row sums."""
    xn = x / x.norm(dim=1, keepdim=True)
    sim = xn @ xn.t()
    _, idx = sim.topk(k, dim=-1)
    a = torch.zeros_like(sim).scatter_(-1, idx, 1.0)
    d = a.sum(1).pow(-0.5)
    return d[:, None] * a * d[None, :]


def densify(edge_index: torch.Tensor, edge_weight: torch.Tensor, n: int) -> torch.Tensor:
    """``out[dst, src]`` = summed weight of the edges ``src -> dst``."""
    return torch.zeros(n, n).index_put((edge_index[1], edge_index[0]), edge_weight, accumulate=True)


def test_degree_sensitive_weights_and_kept_fraction():
    r = torch.zeros(5, 6)
    r[USER, ITEM] = 1.0
    du, di = r.sum(1), r.sum(0)
    expected = 1.0 / torch.sqrt(du[USER] * di[ITEM])
    torch.testing.assert_close(degree_sensitive_weights(USER, ITEM, 5, 6), expected)
    for ratio in (0.0, 0.5, 0.8, 0.9):
        n_keep = max(1, int(10 * (1 - ratio)))  # MMRec's int(E (1 - ratio)), at least one
        keep = degree_sensitive_prune(USER, ITEM, 5, 6, ratio, torch.Generator().manual_seed(1))
        assert keep.numel() == n_keep and keep.unique().numel() == n_keep
        assert int(keep.min()) >= 0 and int(keep.max()) < 10
    with pytest.raises(ValueError, match="prune_ratio must be in"):
        degree_sensitive_prune(USER, ITEM, 5, 6, 1.0)


def test_pruning_keeps_edges_in_proportion_to_inverse_sqrt_degrees():
    gen = torch.Generator().manual_seed(0)
    draws = torch.cat([degree_sensitive_prune(USER, ITEM, 5, 6, 0.9, gen) for _ in range(3000)])
    freq = torch.bincount(draws, minlength=10).float() / draws.numel()
    p = degree_sensitive_weights(USER, ITEM, 5, 6)
    assert (freq - p / p.sum()).abs().max() < 0.03
    # the edge between the most popular user and item is pruned more than one between rare ones
    assert freq[0] < 0.5 * freq[4]


def test_mean_fill_and_modal_weights():
    kg = hand_kg()
    dense = dense_modal_features(kg, 8)
    assert list(dense) == ["text", "image", "title"]
    torch.testing.assert_close(dense["text"][0], kg["text"].x.mean(0))
    torch.testing.assert_close(dense["text"][1:], kg["text"].x)
    mixed = resolve_modal_weights(["image", "text"], {"image": 0.1})
    assert mixed == pytest.approx({"image": 0.1, "text": 0.9})
    assert resolve_modal_weights(["a", "b", "image"], {"image": 0.1, "audio": 0.5}) == pytest.approx(
        {"a": 0.45, "b": 0.45, "image": 0.1}
    )
    assert resolve_modal_weights(["a", "b"], {"a": 3, "b": 1}) == pytest.approx({"a": 0.75, "b": 0.25})
    assert resolve_modal_weights(["a", "b"], None) == {"a": 0.5, "b": 0.5}
    with pytest.raises(ValueError, match="leaving nothing for"):
        resolve_modal_weights(["a", "b"], {"a": 1.5})
    with pytest.raises(ValueError, match="non-negative"):
        resolve_modal_weights(["a", "b"], {"a": -0.1})


def test_frozen_knn_graph_matches_dense_topk():
    kg, k = hand_kg(), 3
    inter = InteractionGraph(5, 8, USER, ITEM)
    torch.manual_seed(0)
    model = FREEDOM(inter, kg, dim=4, feat_embed_dim=4, knn_k=k, modal_weights={"image": 0.1})
    weights = {"text": 0.45, "image": 0.1, "title": 0.45}
    dense = dense_modal_features(kg, 8)
    expected = sum(weights[m] * dense_knn_graph(x, k) for m, x in dense.items())
    ours = densify(model.mm_edge_index, model.mm_edge_weight, 8)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(model.item_graph_embeddings(), expected @ model.ids.item.weight)
    # frozen: training the feature tables leaves the graph as it was built
    before = model.mm_edge_weight.clone()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    emb = model.embed()
    sum(model.rec_losses(emb, USER, ITEM, (ITEM + 1) % 8).values()).backward()
    opt.step()
    assert not model.features.tables["text"].weight.grad.eq(0).all()
    torch.testing.assert_close(model.mm_edge_weight, before)
    assert not any(name.startswith("mm_") for name, _ in model.named_parameters())


def test_pruned_graph_per_epoch_and_full_graph_in_eval():
    inter = InteractionGraph(5, 8, USER, ITEM)
    torch.manual_seed(0)
    model = FREEDOM(inter, hand_kg(), dim=4, feat_embed_dim=4, knn_k=3, prune_ratio=0.5)
    model.train()
    model.embed()
    first = model.pruned_edge_index
    assert first.size(1) == 2 * 5  # 5 of 10 interactions, both directions
    model.embed()
    assert model.pruned_edge_index is first  # one draw per epoch
    seen = set()
    for _ in range(5):
        model.on_epoch_start()  # the trainer's per-epoch hook
        model.embed()
        seen.add(tuple(model.pruned_edge_index[0].tolist()))
    assert len(seen) > 1
    model.eval()
    emb = model.embed()
    ref = LightGCN(inter, dim=4, num_layers=2)
    ref.ids.user.weight.data.copy_(model.ids.user.weight)
    ref.ids.item.weight.data.copy_(model.ids.item.weight)
    user, item = ref.propagate()
    torch.testing.assert_close(emb.user, user)
    torch.testing.assert_close(emb.item, item + model.item_graph_embeddings())


def test_missing_skip_builds_each_modality_graph_among_the_items_that_have_it():
    kg, k = hand_kg(), 3
    inter = InteractionGraph(5, 8, USER, ITEM)
    model = FREEDOM(inter, kg, dim=4, feat_embed_dim=4, knn_k=k, modal_weights={"image": 0.1}, missing="skip")
    weights = {"text": 0.45, "image": 0.1, "title": 0.45}
    expected = torch.zeros(8, 8)
    for m, w in weights.items():
        rows = kg[m].item
        # item j lacks modality j: its other modalities share its row (weights renormalised)
        mass = torch.tensor([sum(v for n, v in weights.items() if kg[n].item.eq(i).any()) for i in rows])
        expected[rows[:, None], rows[None, :]] += (w / mass)[:, None] * dense_knn_graph(kg[m].x, k)
    ours = densify(model.mm_edge_index, model.mm_edge_weight, 8)
    torch.testing.assert_close(ours, expected)
    # item 0 lacks text: no text edge reaches or leaves it; rows still sum to 1
    text_only = FREEDOM(
        inter,
        kg,
        dim=4,
        feat_embed_dim=4,
        knn_k=k,
        modal_weights={"text": 1.0, "image": 0.0, "title": 0.0},
        missing="skip",
    )
    dense = densify(text_only.mm_edge_index, text_only.mm_edge_weight, 8)
    assert dense[0].tolist() == [1.0] + [0.0] * 7 and dense[1:, 0].abs().sum() == 0
    torch.testing.assert_close(ours.sum(1), torch.ones(8))
    with pytest.raises(ValueError, match="missing must be 'mean' or 'skip'"):
        FREEDOM(inter, kg, dim=4, feat_embed_dim=4, missing="drop")


def test_losses_are_named_and_bad_settings_raise():
    inter = InteractionGraph(5, 8, USER, ITEM)
    model = FREEDOM(inter, hand_kg(), dim=4, feat_embed_dim=4, knn_k=3, reg_weight=0.5)
    losses = model.rec_losses(model.embed(), USER[:4], ITEM[:4], torch.tensor([5, 6, 7, 7]))
    assert set(losses) == {"bpr", "modal_bpr"} and all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match="feat_embed_dim"):
        FREEDOM(inter, hand_kg(), dim=4, feat_embed_dim=8)
    with pytest.raises(ValueError, match="kg=None"):
        FREEDOM(inter, None)


@pytest.mark.parametrize(
    ("form", "neg"), [("bpr", [5, 6, 7, 7]), ("softmax", [[5, 6, 0], [6, 7, 1], [7, 0, 2], [7, 7, 3]])]
)
def test_modal_bpr_by_hand_with_one_or_k_negatives(form, neg):
    inter = InteractionGraph(5, 8, USER, ITEM)
    torch.manual_seed(0)
    model = FREEDOM(inter, hand_kg(), dim=4, feat_embed_dim=4, knn_k=3, reg_weight=0.5)
    model.set_rec_loss(form)
    users, pos, neg = USER[:4], ITEM[:4], torch.tensor(neg)
    emb = model.embed()
    modal = model.rec_losses(emb, users, pos, neg)["modal_bpr"]
    expected = 0.0
    for m in model.features.names:
        table, lin = model.features.tables[m].weight, model.features.proj[m]

        def f(i, table=table, lin=lin):  # one item's projected feature row
            return table[i] @ lin.weight.T + lin.bias

        for u, p, ns in zip(users, pos, neg.view(4, -1), strict=True):
            su, sp = emb.user[u], emb.user[u] @ f(p)
            sn = torch.stack([su @ f(n) for n in ns])
            expected = expected + torch.logsumexp(torch.cat([sp.view(1), sn]), 0) - sp  # -log softmax
    # with one negative the softmax over two is BPR's -log sigma(s_p - s_n)
    torch.testing.assert_close(modal, 0.5 * expected / 4)


def test_smoke_training_beats_random(tiny, train, random_recall):
    def make(inter, kg):
        return FREEDOM(inter, kg, modal_weights={"image": 0.1})

    _, state, valid = train(make, tiny, epochs=5, batch_size=256, lr=1e-2, patience=5)
    total = [sum(v for k, v in r.items() if k.startswith("loss/")) for r in state.history]
    assert {"loss/bpr", "loss/modal_bpr"} <= set(state.history[0])
    assert total[-1] < total[0]
    assert state.best_metric > 1.5 * random_recall(valid, 20)

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData

from emmkgr_pyg.baselines.dualgnn import DualGNN
from emmkgr_pyg.graph import InteractionGraph
from emmkgr_pyg.graph.interaction import user_cooccurrence


def random_graph(n_users: int = 30, n_items: int = 12, seed: int = 0) -> tuple[InteractionGraph, HeteroData]:
    """A random interaction graph (many tied co-occurrence counts; user 0 shares no item) and three
    modalities, two missing some items."""
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(n_users, n_items, generator=g) < 0.3
    dense[0] = False
    dense[0, n_items - 1] = True
    dense[1:, n_items - 1] = False
    user, item = dense.nonzero(as_tuple=True)
    kg = HeteroData()
    kg["item"].num_nodes = n_items
    modalities = (("text", range(n_items), 6), ("image", range(0, n_items, 2), 3), ("audio", [1, 4, 5], 4))
    for m, items, d in modalities:
        kg[m].x = torch.randn(len(items), d, generator=g)
        kg[m].item = torch.tensor(list(items))
    return InteractionGraph(n_users, n_items, user, item), kg


def dense_topk(R: np.ndarray, k: int) -> tuple[list[tuple[int, int]], list[int]]:
    """The top-k co-occurring users from the dense U x U count matrix (ties: smaller index)."""
    C = R @ R.T
    np.fill_diagonal(C, 0)
    edges, counts = [], []
    for u in range(C.shape[0]):
        order = np.argsort(-C[u], kind="stable")
        for v in [v for v in order if C[u, v] > 0][:k]:
            edges.append((u, int(v)))
            counts.append(int(C[u, v]))
    return edges, counts


def test_trains_on_tiny_data(tiny, train, random_recall):
    model, state, valid = train(DualGNN, tiny, epochs=4, batch_size=256, lr=1e-2, lambda_kg=0.0)
    losses = [r["loss/bpr"] for r in state.history]
    assert losses[-1] < 0.7 * losses[0]
    assert state.best_metric > 1.5 * random_recall(valid, 20)
    assert model.user_weight.shape == (200, 4)


@pytest.mark.parametrize("k", [1, 4, 100])
def test_user_graph_matches_dense_topk(k):
    inter, _ = random_graph()
    R = np.zeros((inter.n_users, inter.n_items), dtype=np.int64)
    R[inter.user.numpy(), inter.item.numpy()] = 1
    edges, counts = dense_topk(R, k)
    edge_index, count = user_cooccurrence(inter, k, chunk_size=7)  # several chunks
    assert list(map(tuple, edge_index.t().tolist())) == edges
    assert count.tolist() == counts
    # a repeated interaction counts once
    twice = InteractionGraph(
        inter.n_users,
        inter.n_items,
        torch.cat([inter.user, inter.user[:5]]),
        torch.cat([inter.item, inter.item[:5]]),
    )
    again, count_again = user_cooccurrence(twice, k)
    assert torch.equal(again, edge_index) and torch.equal(count_again, count)


@pytest.mark.parametrize("user_aggr", ["softmax", "mean"])
def test_embeddings_match_dense_formula(user_aggr):
    inter, kg = random_graph()
    torch.manual_seed(0)
    model = DualGNN(inter, kg, dim=8, k=4, user_aggr=user_aggr)
    U, N = inter.n_users, inter.n_items
    R = np.zeros((U, N), dtype=np.int64)
    R[inter.user.numpy(), inter.item.numpy()] = 1
    beta = torch.zeros(U, U)
    edges, counts = dense_topk(R, 4)
    for u in range(U):
        rows = [(v, c) for (w, v), c in zip(edges, counts) if w == u]
        if rows:
            nbr, cnt = zip(*rows)
            softmax = torch.softmax(torch.tensor(cnt, dtype=torch.float), 0)
            beta[u, list(nbr)] = softmax if user_aggr == "softmax" else 1 / len(nbr)
    assert beta[0].sum() == 0 and torch.allclose(beta[1:].sum(1), torch.ones(U - 1))
    adj = torch.zeros(U + N, U + N)
    adj[inter.user, inter.item + U] = adj[inter.item + U, inter.user] = 1.0
    deg = adj.sum(1)
    d = torch.where(deg > 0, deg.clamp(min=1).pow(-0.5), torch.zeros_like(deg))
    adj = d[:, None] * adj * d[None, :]
    with torch.no_grad():
        emb = model.embed()
        reps = []
        for j, (pref, mlp) in enumerate(zip(model.preference, model.mlp)):
            h = F.normalize(torch.cat([pref, mlp(model.features(j))]))
            reps.append(h + adj @ h + adj @ adj @ h)
        fused = sum(model.user_weight[:, j : j + 1] * r[:U] for j, r in enumerate(reps))
    torch.testing.assert_close(emb.user, fused + beta @ fused)
    torch.testing.assert_close(emb.item, sum(r[U:] for r in reps))


def test_rejects_bad_settings():
    inter, kg = random_graph()
    with pytest.raises(ValueError, match="DualGNN: user_aggr 'max'"):
        DualGNN(inter, kg, user_aggr="max")
    with pytest.raises(ValueError, match="DualGNN: needs the E-MMKG"):
        DualGNN(inter, None)
    with pytest.raises(ValueError, match="k must be >= 1"):
        user_cooccurrence(inter, 0)

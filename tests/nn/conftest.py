"""Hand-built graphs and the dense reference of Eq. 3-4 for the nn tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from emmkgr_pyg.data.dataset import Catalog, MMDataset, Modality
from emmkgr_pyg.data.readers.base import finalize


def dense_norm_adj(edge_index, num_nodes, edge_weight=None, self_loops=False, dtype=torch.float64):
    r"""Dense :math:`\tilde A = D^{-1/2} A D^{-1/2}`, ``A[t, s]`` = weight of edge ``s -> t``,
    ``D`` = in-degree (row sums); differentiable in ``edge_weight``."""
    w = torch.ones(edge_index.size(1), dtype=dtype) if edge_weight is None else edge_weight.to(dtype)
    a = torch.zeros(num_nodes, num_nodes, dtype=dtype).index_put(
        (edge_index[1], edge_index[0]), w, accumulate=True
    )
    if self_loops:
        a = a + torch.eye(num_nodes, dtype=dtype)
    deg = a.sum(1)
    d = torch.where(deg > 0, deg.clamp(min=1e-300).pow(-0.5), torch.zeros_like(deg))
    return d[:, None] * a * d[None, :]


def dense_lightgcn_layers(user_emb, item_emb, user, item, layers):
    r"""LightGCN the obvious way: A = [[0, R], [R^T, 0]], D^-1/2 A D^-1/2, mean of the layers."""
    n_users, n_items = user_emb.size(0), item_emb.size(0)
    r = torch.zeros(n_users, n_items, dtype=torch.float64)
    r[user, item] = 1.0
    a = torch.zeros(n_users + n_items, n_users + n_items, dtype=torch.float64)
    a[:n_users, n_users:] = r
    a[n_users:, :n_users] = r.t()
    deg = a.sum(1)
    d = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    a = d[:, None] * a * d[None, :]
    h = torch.cat([user_emb, item_emb]).double()
    out = h
    for _ in range(layers):
        h = a @ h
        out = out + h
    out = out / (layers + 1)
    return out[:n_users], out[n_users:]


def hand_kg() -> HeteroData:
    """item (4), text (3), image (2); item 3 has no modality; similar_text is directed."""
    g = torch.Generator().manual_seed(0)
    data = HeteroData()
    data["item"].num_nodes = 4
    data["text"].x = torch.randn(3, 5, generator=g)
    data["text"].item = torch.tensor([0, 1, 2])
    data["image"].x = torch.randn(2, 3, generator=g)
    data["image"].item = torch.tensor([1, 2])
    data["item", "has_text", "text"].edge_index = torch.tensor([[0, 1, 2], [0, 1, 2]])
    data["text", "text_of", "item"].edge_index = torch.tensor([[0, 1, 2], [0, 1, 2]])
    data["text", "similar_text", "text"].edge_index = torch.tensor([[0, 0, 1], [1, 2, 2]])
    data["item", "has_image", "image"].edge_index = torch.tensor([[1, 2], [0, 1]])
    data["image", "image_of", "item"].edge_index = torch.tensor([[0, 1], [1, 2]])
    data["image", "similar_image", "image"].edge_index = torch.tensor([[0, 1], [1, 0]])
    return data


def make_dataset(n_users: int = 12, n_items: int = 8, seed: int = 0) -> MMDataset:
    """A split dataset with two modalities that miss some items."""
    rng = np.random.default_rng(seed)
    coverage = {"text": [0, 1, 3, 4, 6, 7], "image": [1, 2, 5, 6, 7]}
    mods = {
        m: Modality(m, "feature", np.array(items), features=rng.normal(size=(len(items), 6)))
        for m, items in coverage.items()
    }
    catalog = Catalog(
        [f"i{i}" for i in range(n_items)],
        [None] * n_items,
        [None] * n_items,
        [[] for _ in range(n_items)],
        modalities=mods,
    )
    user = np.repeat(np.arange(n_users), 4)
    item = np.concatenate([rng.choice(n_items, 4, replace=False) for _ in range(n_users)])
    return finalize("tiny", [f"u{u}" for u in range(n_users)], user, item, catalog)


@pytest.fixture
def dense_adj():
    return dense_norm_adj


@pytest.fixture
def dense_lightgcn():
    return dense_lightgcn_layers


@pytest.fixture
def kg() -> HeteroData:
    return hand_kg()


@pytest.fixture
def tiny_dataset() -> MMDataset:
    return make_dataset()

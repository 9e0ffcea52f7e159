"""The raw-feature item-item kNN graph (FREEDOM's and the authors'): itself included, 1/k, the
modality mix, against a dense top-k written the obvious way."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import HeteroData

from emmkgr_pyg.graph.item_graph import (
    dense_modal_features,
    knn_item_graph,
    mixed_knn_item_graph,
    modal_presence,
    resolve_modal_weights,
)
from emmkgr_pyg.graph.knn import KNNBuilder


def dense_knn_graph(x: torch.Tensor, k: int) -> torch.Tensor:
    """MMRec's ``get_knn_adj_mat``: cosine, ``topk`` per row (the diagonal is 1, so the item itself
    is in), binary, then ``D^-1/2 A D^-1/2`` with row sums."""
    xn = x.double() / x.double().norm(dim=1, keepdim=True)
    sim = xn @ xn.t()
    idx = sim.topk(k, dim=1).indices
    a = torch.zeros_like(sim).scatter_(1, idx, 1.0)
    d = a.sum(1).pow(-0.5)
    return d[:, None] * a * d[None, :]


def to_dense(edge_index: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
    """Row = the item that lists the neighbour (edges neighbour -> item); duplicates add up."""
    return torch.zeros(n, n, dtype=torch.float64).index_put(
        (edge_index[1], edge_index[0]), weight.double(), accumulate=True
    )


@pytest.fixture
def kg() -> HeteroData:
    g = torch.Generator().manual_seed(3)
    data = HeteroData()
    data["item"].num_nodes = 7
    data["text"].x = torch.randn(7, 5, generator=g)
    data["text"].item = torch.arange(7)
    data["title"].x = torch.randn(6, 4, generator=g)
    data["title"].item = torch.tensor([0, 1, 2, 4, 5, 6])  # item 3 has no title: the mean
    return data


@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_item_graph_lists_the_item_itself_and_its_k_minus_1_neighbours(kg, k):
    x = kg["text"].x
    ei, _ = knn_item_graph(x, k, KNNBuilder(progress=False))
    assert ei.size(1) == 7 * k
    got = to_dense(ei, torch.ones(ei.size(1)), 7)
    expected = dense_knn_graph(x, k) > 0
    assert torch.equal(got > 0, expected)
    assert torch.equal(torch.diagonal(got), torch.ones(7, dtype=torch.float64))


@pytest.mark.parametrize("k", [2, 4])
def test_mixed_knn_item_graph_matches_dense_mix_with_weights_1_over_k(kg, k):
    features = dense_modal_features(kg, 7)
    torch.testing.assert_close(features["title"][3], kg["title"].x.mean(0))
    weights = resolve_modal_weights(list(features), {"title": 0.1})
    assert weights == pytest.approx({"text": 0.9, "title": 0.1})
    ei, ew = mixed_knn_item_graph(features, k, weights, KNNBuilder(progress=False))
    got = to_dense(ei, ew, 7)
    expected = 0.9 * dense_knn_graph(features["text"], k) + 0.1 * dense_knn_graph(features["title"], k)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # every edge of one modality's graph weighs 1/k (rows of degree k on both ends), so rows sum to 1
    torch.testing.assert_close(got.sum(1), torch.ones(7, dtype=torch.float64), rtol=0, atol=1e-6)
    text_only = mixed_knn_item_graph({"text": features["text"]}, k, {"text": 1.0})[1]
    torch.testing.assert_close(text_only, torch.full_like(text_only, 1.0 / k), rtol=0, atol=1e-6)


@pytest.mark.parametrize("k", [2, 4])
def test_mixed_knn_item_graph_skip_builds_each_graph_among_the_items_that_have_the_modality(k):
    g = torch.Generator().manual_seed(5)
    data = HeteroData()
    data["item"].num_nodes = 8
    data["text"].x = torch.randn(6, 5, generator=g)
    data["text"].item = torch.tensor([0, 1, 3, 4, 5, 6])  # item 2 lacks text
    data["title"].x = torch.randn(5, 4, generator=g)
    data["title"].item = torch.tensor([0, 1, 2, 4, 5])  # items 3 and 6 lack a title; 7 has nothing
    present = modal_presence(data, 8)
    assert present["text"].tolist() == [True, True, False, True, True, True, True, False]
    features = dense_modal_features(data, 8)
    w = {"text": 0.9, "title": 0.1}
    ei, ew = mixed_knn_item_graph(features, k, w, KNNBuilder(progress=False), present)
    got = to_dense(ei, ew, 8)
    # reference: per modality, MMRec's graph on the items that have it, rows weighted w_m over the
    # weights of the modalities the row's item has; an item with none keeps itself
    expected = torch.zeros(8, 8, dtype=torch.float64)
    mass = sum(w[m] * present[m].double() for m in w)
    for m in w:
        rows = present[m].nonzero().view(-1)
        sub = dense_knn_graph(data[m].x, k)
        expected[rows[:, None], rows[None, :]] += (w[m] / mass[rows])[:, None] * sub
    expected[7, 7] = 1.0
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # no mean-filled row is anyone's neighbour in the modality it lacks
    assert got[:, 7].tolist() == [0.0] * 7 + [1.0]
    text_graph = to_dense(*mixed_knn_item_graph(features, k, {"text": 1.0, "title": 0.0}, None, present), 8)
    # with the title weighted 0, item 2 (no text) has no modality left: only itself
    assert text_graph[:, 2].tolist() == [0.0, 0.0, 1.0] + [0.0] * 5 and text_graph[2].sum() == 1.0
    assert not text_graph.isnan().any()
    # every row sums to 1, as without skipping
    torch.testing.assert_close(got.sum(1), torch.ones(8, dtype=torch.float64), rtol=0, atol=1e-6)


def test_mixed_knn_item_graph_rejects_k_below_1(kg):
    with pytest.raises(ValueError, match="mixed_knn_item_graph: k must be at least 1"):
        mixed_knn_item_graph(dense_modal_features(kg, 7), 0, {"text": 0.5, "title": 0.5})

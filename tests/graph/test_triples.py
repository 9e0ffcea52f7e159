"""kg_view: the homogeneous view and the triples agree with the HeteroData."""

from __future__ import annotations

import torch
from torch_geometric.data import HeteroData

from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.graph.triples import KGView, kg_view


def hand_graph() -> HeteroData:
    data = HeteroData()
    data["item"].num_nodes = 3
    data["text"].num_nodes = 2
    data["image"].num_nodes = 2
    data["item", "has_text", "text"].edge_index = torch.tensor([[0, 2], [0, 1]])
    data["text", "text_of", "item"].edge_index = torch.tensor([[0, 1], [0, 2]])
    data["item", "has_image", "image"].edge_index = torch.tensor([[1, 2], [0, 1]])
    data["text", "similar_text", "text"].edge_index = torch.tensor([[0, 1], [1, 0]])
    return data


def test_hand_graph_offsets_triples_and_ranges():
    view = kg_view(hand_graph())
    assert isinstance(view, KGView)
    assert view.node_types == ["item", "text", "image"]
    assert view.offsets == {"item": 0, "text": 3, "image": 5}
    assert view.num_nodes == 7
    assert view.relation_names() == ["has_text", "text_of", "has_image", "similar_text"]
    expected = {
        (0, 0, 3),
        (2, 0, 4),  # has_text
        (3, 1, 0),
        (4, 1, 2),  # text_of
        (1, 2, 5),
        (2, 2, 6),  # has_image
        (3, 3, 4),
        (4, 3, 3),  # similar_text
    }
    assert {tuple(t) for t in view.triples.t().tolist()} == expected
    assert view.triples.shape == (3, 8) and view.triples.dtype == torch.long
    assert view.head_range.tolist() == [[0, 3], [3, 2], [0, 3], [3, 2]]
    assert view.tail_range.tolist() == [[3, 2], [0, 3], [5, 2], [3, 2]]
    torch.testing.assert_close(view.edge_index, view.triples[[0, 2]])


def test_view_of_a_built_emmkg_matches_the_hetero_data(tiny):
    data = build_emmkg(tiny, top_n=2, item_item=True, knn=KNNBuilder(progress=False))
    view = kg_view(data)
    assert view.node_types == list(data.node_types)
    assert view.relations == list(data.edge_types)
    start = 0
    for t in data.node_types:
        assert view.offsets[t] == start
        start += data[t].num_nodes
    assert view.num_nodes == start
    assert view.triples.size(1) == sum(data[et].edge_index.size(1) for et in data.edge_types)
    for r, (src, rel, dst) in enumerate(view.relations):
        block = view.triples[:, view.triples[1] == r]
        ei = data[src, rel, dst].edge_index
        shifted = {(int(s) + view.offsets[src], int(d) + view.offsets[dst]) for s, d in ei.t()}
        assert {(int(h), int(t)) for h, _, t in block.t()} == shifted
        assert block.size(1) == ei.size(1)
        assert view.head_range[r].tolist() == [view.offsets[src], data[src].num_nodes]
        assert view.tail_range[r].tolist() == [view.offsets[dst], data[dst].num_nodes]
        # every head and tail lies in its type's range
        lo, n = view.head_range[r].tolist()
        assert ((block[0] >= lo) & (block[0] < lo + n)).all()
        lo, n = view.tail_range[r].tolist()
        assert ((block[2] >= lo) & (block[2] < lo + n)).all()
    assert view.head_range.shape == view.tail_range.shape == (len(view.relations), 2)
    assert view.relation_names()[:3] == ["has_text", "text_of", "similar_text"]


def test_relation_ids_are_stable_for_the_same_configuration(tiny):
    knn = KNNBuilder(progress=False)
    a = kg_view(build_emmkg(tiny, top_n=2, knn=knn))
    b = kg_view(build_emmkg(tiny, top_n=2, knn=knn))
    assert a.relations == b.relations
    torch.testing.assert_close(a.triples, b.triples)


def test_graph_without_edges():
    data = HeteroData()
    data["item"].num_nodes = 2
    data["text"].num_nodes = 1
    data["item", "has_text", "text"].edge_index = torch.zeros((2, 0), dtype=torch.long)
    view = kg_view(data)
    assert view.num_nodes == 3 and view.triples.shape == (3, 0)
    assert view.head_range.tolist() == [[0, 2]] and view.tail_range.tolist() == [[2, 1]]

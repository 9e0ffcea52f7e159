"""kg_view: the homogeneous view and the triples agree with the HeteroData."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import HeteroData

from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.graph.triples import KGView, hold_out_triples, kg_view


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


def _set(triples: torch.Tensor) -> set[tuple[int, int, int]]:
    return {tuple(t) for t in triples.t().tolist()}


def test_hold_out_takes_reverses_along_and_leaves_the_rest(tiny):
    full = build_emmkg(tiny, top_n=3, knn=KNNBuilder(progress=False))
    before = {et: full[et].edge_index.clone() for et in full.edge_types}
    train, test = hold_out_triples(full, 0.2, seed=3)
    view, tview = kg_view(full), kg_view(train)
    # ids unchanged, the original untouched
    assert tview.offsets == view.offsets and tview.relations == view.relations
    for et in full.edge_types:
        assert torch.equal(full[et].edge_index, before[et])
    all_t, train_t, test_t = _set(view.triples), _set(tview.triples), _set(test)
    # a partition of the triples
    assert train_t | test_t == all_t and not train_t & test_t
    assert len(test_t) == test.size(1)
    # no pair of nodes is linked in training and held out
    pair = lambda s: {frozenset((h, t)) for h, _, t in s}
    assert not pair(train_t) & pair(test_t)
    for rel in range(len(view.relations)):
        n_all = int((view.triples[1] == rel).sum())
        n_train = int((tview.triples[1] == rel).sum())
        assert 1 <= n_train < n_all, view.relations[rel]  # each relation gives some, keeps some
    # has_text's held-out items come with their text_of reverse
    rid = {rel: i for i, (_, rel, _) in enumerate(view.relations)}
    has, of = rid["has_text"], rid["text_of"]
    assert {(h, t) for h, r, t in test_t if r == has} == {(t, h) for h, r, t in test_t if r == of}


def test_hold_out_is_seeded_and_zero_holds_nothing(tiny):
    full = build_emmkg(tiny, top_n=3, knn=KNNBuilder(progress=False))
    a, b = hold_out_triples(full, 0.2, seed=1)[1], hold_out_triples(full, 0.2, seed=1)[1]
    assert torch.equal(a, b) and not torch.equal(a, hold_out_triples(full, 0.2, seed=2)[1])
    train, test = hold_out_triples(full, 0.0)
    assert test.size(1) == 0 and torch.equal(kg_view(train).triples, kg_view(full).triples)
    with pytest.raises(ValueError, match="fraction 1.0 must be in"):
        hold_out_triples(full, 1.0)

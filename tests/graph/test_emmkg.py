"""build_emmkg and graph_stats on hand-built datasets whose modalities miss some items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emmkgr_pyg.data.dataset import DataError
from emmkgr_pyg.graph.emmkg import (
    ITEM,
    ITEM_ITEM,
    build_emmkg,
    graph_stats,
    item_modal_relation,
    modal_item_relation,
    modal_modal_relation,
)
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.utils import ConfigError

MODS = ("text", "image", "title")


def top_n_cosine(features: np.ndarray, n: int) -> set[tuple[int, int]]:
    """Eq. 2 the obvious way: (j, k) for the n most cosine-similar k != j."""
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    n = min(n, len(x) - 1)
    return {(j, int(k)) for j in range(len(x)) for k in np.argsort(-sim[j], kind="stable")[:n]}


def pairs(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(s), int(d)) for s, d in edge_index.t()}


def test_nodes_one_per_item_and_per_item_having_a_modality(tiny):
    data = build_emmkg(tiny, top_n=2, knn=KNNBuilder(progress=False))
    assert data.node_types == [ITEM, *MODS]
    assert data[ITEM].num_nodes == 8
    for m in MODS:
        mod = tiny.modalities[m]
        assert data[m].num_nodes == mod.n_items_with
        assert data[m].x.shape == (mod.n_items_with, mod.dim) and data[m].x.dtype == torch.float32
        torch.testing.assert_close(data[m].x, torch.from_numpy(mod.features))
        assert data[m].item.tolist() == mod.item_index.tolist()
    assert data["text"].num_nodes == 6 and data["image"].num_nodes == 5 and data["title"].num_nodes == 8


def test_item_lacking_a_modality_has_no_node_and_no_has_edge(tiny):
    data = build_emmkg(tiny, top_n=2, knn=KNNBuilder(progress=False))
    for m, missing in (("text", {2, 5}), ("image", {0, 3, 4})):
        has = data[item_modal_relation(m)].edge_index
        assert not missing & set(has[0].tolist())
        assert not missing & set(data[m].item.tolist())
        # every other item has exactly one node of the modality
        assert sorted(has[0].tolist()) == sorted(set(range(8)) - missing)


def test_item_modal_edges_and_their_reverse(tiny):
    data = build_emmkg(tiny, top_n=2, knn=KNNBuilder(progress=False))
    for m in MODS:
        items = tiny.modalities[m].item_index
        has = data[item_modal_relation(m)].edge_index
        of = data[modal_item_relation(m)].edge_index
        assert has.shape == of.shape == (2, len(items))
        assert pairs(has) == {(int(i), j) for j, i in enumerate(items)}
        assert pairs(of) == {(d, s) for s, d in pairs(has)}
    assert item_modal_relation("image") == ("item", "has_image", "image")
    assert modal_item_relation("image") == ("image", "image_of", "item")
    assert modal_modal_relation("image") == ("image", "similar_image", "image")


@pytest.mark.parametrize("top_n", [1, 2, 10])
def test_modal_modal_edges_are_the_top_n_within_a_type(tiny, top_n):
    data = build_emmkg(tiny, top_n=top_n, knn=KNNBuilder(progress=False))
    for m in MODS:
        rel = modal_modal_relation(m)
        assert rel[0] == rel[2] == m  # only within a type
        mm = data[rel].edge_index
        n_nodes = data[m].num_nodes
        assert mm.shape == (2, n_nodes * min(top_n, n_nodes - 1))
        assert (mm[0] != mm[1]).all()  # never a node to itself
        assert int(mm.min()) >= 0 and int(mm.max()) < n_nodes
        assert pairs(mm) == top_n_cosine(tiny.modalities[m].features.astype(np.float64), top_n)


def test_edge_types_in_construction_order(tiny):
    data = build_emmkg(tiny, top_n=2, knn=KNNBuilder(progress=False))
    expected = []
    for m in MODS:
        expected += [item_modal_relation(m), modal_item_relation(m), modal_modal_relation(m)]
    assert data.edge_types == expected


def test_symmetric_knn_gives_symmetric_modal_modal_edges(tiny):
    data = build_emmkg(tiny, top_n=2, knn=KNNBuilder(symmetric=True, progress=False))
    for m in MODS:
        mm = pairs(data[modal_modal_relation(m)].edge_index)
        directed = top_n_cosine(tiny.modalities[m].features.astype(np.float64), 2)
        assert mm == directed | {(d, s) for s, d in directed}


def test_item_item_lifts_modal_neighbours_to_their_items(tiny):
    data = build_emmkg(tiny, top_n=2, item_item=True, knn=KNNBuilder(progress=False))
    expected = set()
    for m in MODS:
        items = tiny.modalities[m].item_index
        expected |= {
            (int(items[j]), int(items[k])) for j, k in pairs(data[modal_modal_relation(m)].edge_index)
        }
    expected = {(a, b) for a, b in expected if a != b}
    ii = data[ITEM_ITEM].edge_index
    assert ITEM_ITEM == ("item", "similar_item", "item")
    assert data.edge_types[-1] == ITEM_ITEM
    assert ii.dtype == torch.long and ii.size(1) == len(expected)  # no duplicates
    assert pairs(ii) == expected
    assert (ii[0] != ii[1]).all()


def test_item_item_symmetric_and_without_modal_modal(tiny):
    data = build_emmkg(
        tiny, top_n=2, modal_modal=False, item_item=True, knn=KNNBuilder(symmetric=True, progress=False)
    )
    assert not any(rel.startswith("similar_") and rel != "similar_item" for _, rel, _ in data.edge_types)
    ii = pairs(data[ITEM_ITEM].edge_index)
    assert ii == {(b, a) for a, b in ii} and ii
    assert set(data.knn_seconds) == set(MODS)


def test_item_modal_and_modal_modal_switches(tiny):
    knn = KNNBuilder(progress=False)
    no_im = build_emmkg(tiny, top_n=2, item_modal=False, knn=knn)
    assert no_im.edge_types == [modal_modal_relation(m) for m in MODS]
    no_mm = build_emmkg(tiny, top_n=2, modal_modal=False, knn=knn)
    assert no_mm.edge_types == [r for m in MODS for r in (item_modal_relation(m), modal_item_relation(m))]
    assert no_mm.knn_seconds == {}  # no kNN was built
    assert ITEM_ITEM not in build_emmkg(tiny, top_n=2, knn=knn).edge_types
    assert build_emmkg(tiny, top_n=2, item_modal=False, modal_modal=False, knn=knn).edge_types == []


def test_modalities_select_and_order_node_types(tiny):
    data = build_emmkg(tiny, ["image", "text"], top_n=2, knn=KNNBuilder(progress=False))
    assert data.node_types == [ITEM, "image", "text"]
    assert set(data.knn_seconds) == {"image", "text"}


def test_modality_without_features_or_unknown_raises(dataset_factory, tiny):
    bare = dataset_factory(features=False)
    with pytest.raises(DataError, match="modality 'text' has no features; encode it first"):
        build_emmkg(bare, ["text"], knn=KNNBuilder(progress=False))
    with pytest.raises(DataError, match=r"has no modality \['video'\]"):
        build_emmkg(tiny, ["text", "video"])


def test_negative_top_n_is_refused_and_top_n_above_the_catalogue_warned(tiny, caplog):
    with pytest.raises(ConfigError, match=r"build_emmkg: graph\.top_n=-1 is negative; give the number"):
        build_emmkg(tiny, top_n=-1, knn=KNNBuilder(progress=False))
    build_emmkg(tiny, top_n=-1, modal_modal=False)  # no similarity edges: top_n is unused
    assert "graph.top_n" not in caplog.text
    data = build_emmkg(tiny, top_n=8, knn=KNNBuilder(progress=False))
    assert "graph.top_n=8 is not below the 8 items of dataset" in caplog.text
    assert "lower graph.top_n" in caplog.text
    assert data["title", "similar_title", "title"].edge_index.size(1) == 8 * 7  # all others


def test_graph_stats_keys_and_counts(tiny):
    data = build_emmkg(tiny, top_n=2, item_item=True, knn=KNNBuilder(progress=False))
    stats = graph_stats(data)
    assert set(stats) == {"nodes", "edges", "knn_seconds"}
    assert stats["nodes"] == {"item": 8, "text": 6, "image": 5, "title": 8}
    assert list(stats["edges"]) == ["__".join(et) for et in data.edge_types]
    assert "item__has_text__text" in stats["edges"] and "text__text_of__item" in stats["edges"]
    assert "image__similar_image__image" in stats["edges"] and "item__similar_item__item" in stats["edges"]
    assert stats["edges"]["item__has_text__text"] == 6
    assert stats["edges"]["image__similar_image__image"] == 10
    assert stats["edges"]["title__similar_title__title"] == 16
    assert all(isinstance(v, int) for v in stats["edges"].values())
    assert set(stats["knn_seconds"]) == set(MODS)

"""Attribute values as shared entity nodes: which values become entities, and their edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emmkgr_pyg.data.dataset import Catalog
from emmkgr_pyg.graph.emmkg import build_emmkg, graph_stats
from emmkgr_pyg.graph.entities import entity_links
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.utils import ConfigError

BRANDS = ["Acme", " acme  ", None, "Zed", "Solo", "ZED", "", "Acme"]
CATS = [
    ["Office", "Writing", "Pens"],
    ["Office", "Writing", "Pens"],
    ["Office", "Paper"],
    ["Office", "Paper"],
    ["Office", "Writing", "Markers"],
    [],
    ["Office", "Paper", "Pens"],  # "Pens" under another parent: another entity
    ["Office", "Writing"],
]


def catalog(modalities=None) -> Catalog:
    n = len(BRANDS)
    return Catalog([f"i{i}" for i in range(n)], [None] * n, BRANDS, CATS, modalities=modalities or {})


def pairs(links) -> set[tuple[int, str]]:
    return {(int(i), links.names[e]) for i, e in zip(links.item, links.entity, strict=True)}


def test_brand_entities_fold_case_and_space_and_drop_singletons():
    links = entity_links(catalog(), "brand", min_items=2, max_share=1.0)
    # "solo" has one item: no path between items, no entity; None and "" are no brand
    assert links.names == ["acme", "zed"]
    assert pairs(links) == {(0, "acme"), (1, "acme"), (7, "acme"), (3, "zed"), (5, "zed")}


def test_category_entities_are_path_prefixes_and_hubs_are_dropped():
    links = entity_links(catalog(), "category", min_items=2, max_share=0.5)
    # "Office" covers 7 of 8 items (> half): dropped; "Writing" covers 4 = half: kept
    assert links.names == ["Office > Paper", "Office > Writing", "Office > Writing > Pens"]
    assert pairs(links) == {
        (2, "Office > Paper"),
        (3, "Office > Paper"),
        (6, "Office > Paper"),
        (0, "Office > Writing"),
        (1, "Office > Writing"),
        (4, "Office > Writing"),
        (7, "Office > Writing"),
        (0, "Office > Writing > Pens"),
        (1, "Office > Writing > Pens"),
    }
    everything = entity_links(catalog(), "category", min_items=1, max_share=1.0)
    assert "Office" in everything.names and "Office > Paper > Pens" in everything.names
    assert len(everything.item) == sum(len(p) for p in CATS)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"field": "colour"}, "not an entity field"),
        ({"field": "brand", "min_items": 0}, "entity_min_items"),
        ({"field": "brand", "max_share": 0.0}, "entity_max_share"),
    ],
)
def test_bad_settings_raise_a_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        entity_links(catalog(), **kwargs)


def test_build_emmkg_adds_entity_types_after_the_modalities(dataset_factory):
    ds = dataset_factory()
    n = ds.n_items
    ds.catalog.brand[:] = ["a", "a", "b", "b", "b", None, "c", "a"][:n]
    ds.catalog.categories[:] = [["Root", "X"] if i % 2 else ["Root", "Y"] for i in range(n)]
    data = build_emmkg(ds, top_n=2, knn=KNNBuilder(progress=False), entities=["brand", "category"])
    assert data.node_types == ["item", "text", "image", "title", "brand", "category"]
    assert data["brand"].names == ["a", "b"] and data["brand"].num_nodes == 2
    assert data["category"].names == ["Root > X", "Root > Y"]  # "Root" links every item
    has = data["item", "has_brand", "brand"].edge_index
    assert sorted(map(tuple, has.t().tolist())) == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 1), (7, 0)]
    assert torch.equal(data["brand", "brand_of", "item"].edge_index, has.flip(0))
    cat = data["item", "has_category", "category"].edge_index
    assert cat.size(1) == n and torch.equal(cat[1], (cat[0] % 2 == 0).long())  # odd: X, even: Y
    stats = graph_stats(data)
    assert stats["nodes"]["brand"] == 2 and stats["edges"]["item__has_brand__brand"] == 6
    view = kg_view(data)  # the entity relations are knowledge-graph triples
    assert ("item", "has_category", "category") in view.relations
    assert view.num_nodes == n + sum(len(m.item_index) for m in ds.modalities.values()) + 2 + 2


def test_an_entity_field_named_like_a_modality_is_refused(dataset_factory):
    ds = dataset_factory(coverage={"brand": list(range(8))})
    with pytest.raises(ConfigError, match="also a modality"):
        build_emmkg(ds, top_n=2, knn=KNNBuilder(progress=False), entities=["brand"])


def test_no_entities_by_default(dataset_factory):
    data = build_emmkg(dataset_factory(), top_n=2, knn=KNNBuilder(progress=False))
    assert data.node_types == ["item", "text", "image", "title"]
    assert np.all([not r.startswith("has_brand") for _, r, _ in data.edge_types])

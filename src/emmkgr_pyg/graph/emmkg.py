r"""The E-MMKG as a :class:`torch_geometric.data.HeteroData` (paper section 3.1).

Node types: ``item`` (one node per item) and one type per modality, holding its feature matrix
``x`` and ``item`` (the item each node belongs to); an item lacking a modality has no node of it.

Edge types, each a relation of the knowledge graph:

- item-modal: ``('item', 'has_<m>', m)`` and its reverse ``(m, '<m>_of', 'item')`` (the paper's
  ``image_of``);
- modal-modal (Eq. 2): ``(m, 'similar_<m>', m)``, each node to its top-n most cosine-similar nodes
  of other items;
- item-item (the paper's ablation :math:`A_{ii}`): ``('item', 'similar_item', 'item')``, item ``j``
  to item ``k`` when a modality node of ``j`` lists one of ``k`` among its top-n;
- item-entity (an extension, ``graph.entities``): attribute values such as a brand or a category
  as node types without features after the modalities, ``('item', 'has_<field>', <field>)`` and its
  reverse (:mod:`.entities`).

Which blocks exist is configuration (``conf/graph/``). Nothing here names a modality.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import HeteroData

from ..data.dataset import DataError, MMDataset
from ..utils import ConfigError
from .entities import entity_links
from .knn import KNNBuilder, symmetrize

log = logging.getLogger(__name__)

ITEM = "item"


def item_modal_relation(m: str) -> tuple[str, str, str]:
    return (ITEM, f"has_{m}", m)


def modal_item_relation(m: str) -> tuple[str, str, str]:
    return (m, f"{m}_of", ITEM)


def modal_modal_relation(m: str) -> tuple[str, str, str]:
    return (m, f"similar_{m}", m)


ITEM_ITEM = (ITEM, "similar_item", ITEM)


def build_emmkg(
    dataset: MMDataset,
    modalities: Sequence[str] | None = None,
    *,
    top_n: int = 10,
    item_modal: bool = True,
    modal_modal: bool = True,
    item_item: bool = False,
    knn: KNNBuilder | None = None,
    entities: Sequence[str] = (),
    entity_min_items: int = 2,
    entity_max_share: float = 0.5,
) -> HeteroData:
    """Build the E-MMKG of an encoded dataset.

    Args:
        dataset: a dataset whose modalities carry features.
        modalities: the modalities that become node types, in order (default: all, in the
            dataset's order).
        top_n: neighbours per modality node in the modal-modal edges (Eq. 2, default ``10``);
            negative raises :class:`~emmkgr_pyg.utils.ConfigError`, at least the number of items
            warns.
        item_modal, modal_modal, item_item: which edge blocks to build.
        knn: the kNN builder (default: exact, directed).
        entities: catalogue fields whose values become shared entity nodes (``"brand"``,
            ``"category"``; default none), each a node type after the modalities.
        entity_min_items, entity_max_share: keep an entity shared by at least this many items
            and at most this fraction of them (:func:`~.entities.entity_links`).

    Returns:
        The graph. ``data.knn_seconds`` holds the kNN build time of each modality.
    """
    knn = knn or KNNBuilder()
    if (modal_modal or item_item) and int(top_n) < 0:
        raise ConfigError(
            f"build_emmkg: graph.top_n={top_n} is negative; give the number of neighbours per "
            "modality node (the paper uses 10), or 0 for no similarity edges."
        )
    if (modal_modal or item_item) and top_n >= dataset.n_items:
        log.warning(
            "graph.top_n=%d is not below the %d items of dataset '%s': every modality node is "
            "linked to all others of its modality; lower graph.top_n",
            top_n,
            dataset.n_items,
            dataset.name,
        )
    names = list(dataset.modalities) if modalities is None else list(modalities)
    missing = [m for m in names if m not in dataset.modalities]
    if missing:
        raise DataError(
            f"build_emmkg: dataset '{dataset.name}' has no modality {missing} "
            f"(it has {list(dataset.modalities)})."
        )
    data = HeteroData()
    data[ITEM].num_nodes = dataset.n_items
    knn_seconds: dict[str, float] = {}
    lifted = []
    for m in names:
        mod = dataset.modalities[m]
        if mod.features is None:
            raise DataError(f"build_emmkg: modality '{m}' has no features; encode it first.")
        store = data[m]
        store.x = torch.from_numpy(mod.features)
        store.item = torch.from_numpy(mod.item_index)
        store.num_nodes = mod.n_items_with
        local = torch.arange(mod.n_items_with)
        if item_modal:
            data[item_modal_relation(m)].edge_index = torch.stack([store.item, local])
            data[modal_item_relation(m)].edge_index = torch.stack([local, store.item])
        if modal_modal or item_item:
            t0 = time.perf_counter()
            mm = torch.from_numpy(knn.edges(mod.features, top_n))
            knn_seconds[m] = round(time.perf_counter() - t0, 4)
            if modal_modal:
                data[modal_modal_relation(m)].edge_index = mm
            if item_item:
                lifted.append(store.item[mm])
    for field in entities or ():
        if field in data.node_types:
            raise ConfigError(
                f"graph.entities: '{field}' is also a modality of dataset '{dataset.name}'; "
                "rename the modality or leave the field out of graph.entities."
            )
        links = entity_links(dataset.catalog, field, min_items=entity_min_items, max_share=entity_max_share)
        data[field].num_nodes = links.n_entities
        data[field].names = links.names
        item, ent = torch.from_numpy(links.item), torch.from_numpy(links.entity)
        data[item_modal_relation(field)].edge_index = torch.stack([item, ent])
        data[modal_item_relation(field)].edge_index = torch.stack([ent, item])
    if item_item:
        ii = torch.cat(lifted, dim=1).numpy() if lifted else np.zeros((2, 0), dtype=np.int64)
        ii = ii[:, ii[0] != ii[1]]
        key = np.unique(ii[0] * dataset.n_items + ii[1])
        ii = np.stack([key // dataset.n_items, key % dataset.n_items])
        if knn.symmetric:
            ii = symmetrize(ii, dataset.n_items)
        data[ITEM_ITEM].edge_index = torch.from_numpy(ii)
    data.knn_seconds = knn_seconds
    return data


def graph_stats(data: HeteroData) -> dict[str, Any]:
    """``nodes`` {type: count}, ``edges`` {"src__rel__dst": count} and the kNN build times."""
    return {
        "nodes": {t: int(data[t].num_nodes) for t in data.node_types},
        "edges": {"__".join(et): int(data[et].edge_index.size(1)) for et in data.edge_types},
        "knn_seconds": dict(getattr(data, "knn_seconds", {}) or {}),
    }

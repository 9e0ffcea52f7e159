"""The E-MMKG as one homogeneous graph and as knowledge-graph triples (head, relation, tail).

Node ids are global: node types in ``data.node_types`` order (``item`` first), each a contiguous
block. Relation ids are the positions of the edge types in ``data.edge_types`` (construction order,
so the same configuration always gives the same ids).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.typing import EdgeType


@dataclass
class KGView:
    """The homogeneous view of an E-MMKG.

    Attributes:
        node_types: node types in block order.
        offsets: first global id of each node type.
        num_nodes: total number of nodes.
        relations: edge types; relation id = position.
        triples: ``[3, T]`` (head, relation, tail) global ids; also the homogeneous edges.
        head_range, tail_range: ``[R, 2]`` (first id, count) of the head / tail node type of
            each relation, for type-constrained negative sampling.
    """

    node_types: list[str]
    offsets: dict[str, int]
    num_nodes: int
    relations: list[EdgeType]
    triples: Tensor
    head_range: Tensor
    tail_range: Tensor

    @property
    def edge_index(self) -> Tensor:
        return self.triples[[0, 2]]

    def relation_names(self) -> list[str]:
        return [rel for _, rel, _ in self.relations]


def kg_view(data: HeteroData) -> KGView:
    """The homogeneous view and triples of ``data`` (via ``HeteroData.to_homogeneous``)."""
    homo = data.to_homogeneous(node_attrs=[], edge_attrs=[], add_node_type=True, add_edge_type=True)
    node_types = list(data.node_types)
    counts = torch.bincount(homo.node_type, minlength=len(node_types))
    starts = torch.cumsum(counts, 0) - counts
    offsets = {t: int(starts[i]) for i, t in enumerate(node_types)}
    relations = list(data.edge_types)
    type_id = {t: i for i, t in enumerate(node_types)}
    head_range = torch.tensor(
        [[offsets[s], int(counts[type_id[s]])] for s, _, _ in relations], dtype=torch.long
    ).view(-1, 2)
    tail_range = torch.tensor(
        [[offsets[d], int(counts[type_id[d]])] for _, _, d in relations], dtype=torch.long
    ).view(-1, 2)
    triples = torch.stack([homo.edge_index[0], homo.edge_type, homo.edge_index[1]])
    return KGView(node_types, offsets, int(homo.num_nodes), relations, triples, head_range, tail_range)


def hold_out_triples(data: HeteroData, fraction: float, seed: int = 0) -> tuple[HeteroData, Tensor]:
    """Hold out ``fraction`` of each relation's triples for link prediction.

    A held-out triple ``(h, r, t)`` takes every other triple between ``h`` and ``t`` with it (its
    reverse ``(t, r', h)``, e.g. ``text_of`` of ``has_text``, would give it away), so a relation
    with a reverse gives about twice ``fraction``. Each relation draws at least one triple when
    ``fraction > 0`` and at most all but one.

    Returns:
        ``(train, test)``: a shallow copy of ``data`` without the held-out edges (what the encoder
        propagates over and the KG loss trains on; node ids and relation ids unchanged) and the
        held-out triples ``[3, T]`` in the global ids of :func:`kg_view`.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"hold_out_triples: fraction {fraction} must be in [0, 1).")
    view = kg_view(data)
    h, r, t = view.triples
    g = torch.Generator().manual_seed(seed)
    held = torch.zeros(h.numel(), dtype=torch.bool)
    for rel in range(len(view.relations)):
        idx = (r == rel).nonzero().view(-1)
        n = min(max(round(fraction * idx.numel()), 1), idx.numel() - 1) if fraction > 0 else 0
        held[idx[torch.randperm(idx.numel(), generator=g)[:n]]] = True
    pair = torch.minimum(h, t) * view.num_nodes + torch.maximum(h, t)
    held |= torch.isin(pair, pair[held])
    train = copy.copy(data)
    start = 0
    for rel, edge_type in enumerate(view.relations):
        count = int((r == rel).sum())  # to_homogeneous keeps each edge type's edges, in order
        train[edge_type].edge_index = data[edge_type].edge_index[:, ~held[start : start + count]]
        start += count
    return train, view.triples[:, held]

"""The E-MMKG as one homogeneous graph and as knowledge-graph triples (head, relation, tail).

Node ids are global: node types in ``data.node_types`` order (``item`` first), each a contiguous
block. Relation ids are the positions of the edge types in ``data.edge_types`` (construction order,
so the same configuration always gives the same ids).
"""

from __future__ import annotations

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

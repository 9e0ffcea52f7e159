r"""LightGCN propagation over a sampled L-hop neighbourhood, for mini-batch training.

A sampled subgraph (e.g. from PyG's :class:`~torch_geometric.loader.NeighborLoader`) carries
``n_id`` (its nodes' global ids, the seeds first), a local ``edge_index`` and ``edge_weight``: the
entries of the FULL graph's :math:`\tilde{\mathbf{A}} = \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}`
(degrees counted once on the whole graph, not on the subgraph). With every neighbour kept
(fan-out ``-1``) the seeds' layer mean is then exactly the full propagation's:

.. math::
    \mathbf{h}_v = \frac{1}{L+1} \sum_{l=0}^{L} (\tilde{\mathbf{A}}^{l} \mathbf{E})_v
    \quad \text{for every seed } v,

because a node :math:`k` hops from the seeds keeps all its in-edges for :math:`k < L`. With a
smaller fan-out a target's sampled in-edges are scaled by its full in-degree over its sampled
in-degree (an unbiased estimate of the full sum).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..graph.emmkg import ITEM
from .conv import sparse_adjacency, spmm_with_transpose
from .emmkgr import EMMKGR
from .encoder import EMMKGEncoder
from .recommender import Embeddings, LightGCN, Recommender


def gather_blocks(n_id: Tensor, starts: list[int], lookups: list) -> Tensor:
    """Rows ``n_id`` of the concatenation of node blocks (block ``b`` starts at global id
    ``starts[b]``; ``lookups[b](local ids)`` gives its rows), without building the whole table."""
    block = torch.bucketize(n_id, torch.tensor(starts[1:], dtype=n_id.dtype, device=n_id.device), right=True)
    parts, order = [], []
    for b, fn in enumerate(lookups):
        idx = (block == b).nonzero().view(-1)
        if idx.numel():
            parts.append(fn(n_id[idx] - starts[b]))
            order.append(idx)
    out = torch.cat(parts)
    perm = torch.empty_like(n_id)
    perm[torch.cat(order)] = torch.arange(n_id.numel(), device=n_id.device)
    return out[perm]


def subgraph_layer_mean(x0: Tensor, sub: Data, num_layers: int) -> Tensor:
    """The layer mean over a sampled subgraph, for its first ``sub.batch_size`` nodes (the seeds).

    ``x0`` ``[len(sub.n_id), d]`` are the layer-0 embeddings of the subgraph's nodes; ``sub``'s
    ``edge_weight`` are the full graph's normalised (and fan-out rescaled) entries."""
    n = x0.size(0)
    adj_t, adj = sparse_adjacency(sub.edge_index, sub.edge_weight.to(x0.dtype), n, "torch")
    h, out = x0, x0
    for _ in range(num_layers):
        h = spmm_with_transpose(adj_t, adj, h)
        out = out + h
    return (out / (num_layers + 1))[: sub.batch_size]


def interaction_x0(cf: LightGCN, n_id: Tensor) -> Tensor:
    """Layer-0 embeddings of user-item graph nodes (users ``0..U-1``, items ``U..``)."""
    return gather_blocks(n_id, [0, cf.n_users], [cf.ids.user, cf.ids.item])


def emmkg_x0(encoder: EMMKGEncoder, n_id: Tensor) -> Tensor:
    r"""Layer-0 embeddings :math:`\mathbf{E}^{MM}` of E-MMKG nodes: item id embeddings, and the
    projection of only the sampled modality nodes' features, and entity embeddings."""
    types = [ITEM, *encoder.modalities]
    lookups = [encoder.item_emb]
    for i in range(len(encoder.modalities)):
        lookups.append(lambda j, i=i: encoder.project(i, encoder.features(i)[j].float(), reduced=True))
    if encoder.entity_emb is not None:  # the entity types are one contiguous block, the last
        types.append(encoder.entities[0])
        lookups.append(encoder.entity_emb)
    return gather_blocks(n_id, [encoder.view.offsets[t] for t in types], lookups)


def interaction_model(model: Recommender) -> LightGCN:
    """The LightGCN on the user-item graph of a model that sampled training supports."""
    cf = model.cf if isinstance(model, EMMKGR) and not model.item_graph_layers else model
    if isinstance(model, EMMKGR) and model.modal_bpr_weight:
        raise ValueError(
            "sampled propagation: modal_bpr reads every item's modality nodes in H^MM, which a "
            "sampled subgraph does not hold; set model.net.modal_bpr_weight=0 or train.propagation=full."
        )
    if isinstance(model, EMMKGR) and (model.user_graph_k or model.user_side_adj is not None):
        raise ValueError(
            "sampled propagation: the user graph and user_side read every user's neighbours; set "
            "model.net.user_graph_k=0, model.net.user_side=false or train.propagation=full."
        )
    if isinstance(cf, LightGCN):
        if cf.prune_ratio:
            raise ValueError(
                "sampled propagation: prune_ratio is not applied to sampled subgraphs; set "
                "model.net.prune_ratio=0 or train.propagation=full."
            )
        return cf
    raise ValueError(
        f"sampled propagation: {type(model).__name__} is not supported (LightGCN, and EMMKGR with "
        "item_graph_layers=0, are); set train.propagation=full."
    )


def sampled_embeddings(model: Recommender, inter_sub: Data | None, kg_sub: Data | None) -> Embeddings:
    r"""Embeddings of the seeds only: ``user`` ``[U_s, d]`` and ``item`` ``[I_s, d]`` in the order of
    ``inter_sub``'s seeds (users first, then items), and ``extra["H_mm"]`` in ``kg_sub``'s (their
    global KG ids in ``extra["kg_ids"]``).

    For E-MMKGR the items' :math:`\mathbf{H}^{MM}` is added to :math:`\mathbf{H}^{IN}`, so
    ``kg_sub``'s seeds must begin with ``inter_sub``'s item seeds (as global item ids)."""
    cf = interaction_model(model)
    user = item = None
    extra: dict[str, Tensor] = {}
    if inter_sub is not None:
        h = subgraph_layer_mean(interaction_x0(cf, inter_sub.n_id), inter_sub, cf.num_layers)
        n_u = int((inter_sub.n_id[: inter_sub.batch_size] < cf.n_users).sum())
        user, item = h[:n_u], h[n_u:]
    if kg_sub is not None and isinstance(model, EMMKGR):
        enc = model.encoder
        h_mm = subgraph_layer_mean(emmkg_x0(enc, kg_sub.n_id), kg_sub, enc.num_layers)
        extra["H_mm"] = h_mm
        extra["kg_ids"] = kg_sub.n_id[: h_mm.size(0)]  # the global KG ids of its rows
        if item is not None:
            extra["H_in_item"] = item
            item = item + h_mm[: item.size(0)]
    return Embeddings(user, item, extra)

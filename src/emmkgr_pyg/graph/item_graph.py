r"""The item-item graphs and per-item modality features that several models share, read from the
E-MMKG: dense per-item modality features (mean fill), per-modality mixing weights, item-item kNN
graphs on raw features through faiss with MMRec's normalisation, and their weighted mix
(FREEDOM's frozen graph, which the authors' E-MMKGR code reuses).

The modalities are the E-MMKG's node types other than ``item`` that carry ``x``, in the graph's
order (:func:`modality_types`). Nothing here names a modality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from .emmkg import ITEM
from .knn import KNNBuilder


def modality_types(kg: HeteroData | None, owner: str = "baseline") -> list[str]:
    """The modality node types of an E-MMKG (those with features ``x``), in the graph's order.

    Raises:
        ValueError: without a graph or without any modality.
    """
    if kg is None:
        raise ValueError(
            f"{owner}: needs the E-MMKG for its modality features (kg=None); build it with "
            "emmkgr_pyg.graph.build_emmkg (a run does when the model sets needs_features)."
        )
    names = [t for t in kg.node_types if t != ITEM and "x" in kg[t]]
    if not names:
        raise ValueError(
            f"{owner}: the E-MMKG has no modality node type with features 'x'; encode the dataset's "
            "modalities first (emmkgr_pyg.data.features.encode_dataset)."
        )
    return names


def dense_modal_features(kg: HeteroData, n_items: int, owner: str = "baseline") -> dict[str, Tensor]:
    """One row per item for each modality, ``{m: [n_items, d_m]}`` (float32).

    An item lacking modality ``m`` gets the mean of ``m``'s features (MMRec's rule for missing
    images); a modality no item has is all zeros.
    """
    out = {}
    for m in modality_types(kg, owner):
        x = kg[m].x.float()
        dense = torch.zeros(n_items, x.size(1)) if x.size(0) == 0 else x.mean(0).repeat(n_items, 1)
        dense[kg[m].item.long()] = x
        out[m] = dense
    return out


def modal_presence(kg: HeteroData, n_items: int, owner: str = "baseline") -> dict[str, Tensor]:
    """Which items have each modality, ``{m: bool [n_items]}`` (the rows that
    :func:`dense_modal_features` does not mean-fill)."""
    out = {}
    for m in modality_types(kg, owner):
        has = torch.zeros(n_items, dtype=torch.bool)
        has[kg[m].item.long()] = True
        out[m] = has
    return out


def resolve_modal_weights(
    names: Sequence[str], weights: Mapping[str, float] | None, owner: str = "baseline"
) -> dict[str, float]:
    """Per-modality mixing weights that sum to 1.

    ``weights`` names some modalities (names the dataset lacks are ignored); the modalities it does
    not name share the remaining mass ``1 - sum(given)`` equally. When it names every modality, the
    given weights are rescaled to sum to 1. ``None``: uniform. So ``{"image": 0.1}`` on image + text
    is FREEDOM's ``mm_image_weight = 0.1``.

    Raises:
        ValueError: on a negative weight, given weights above 1 while other modalities remain, or
            weights that sum to 0.
    """
    names = list(names)
    if not weights:
        return {m: 1.0 / len(names) for m in names}
    bad = {m: w for m, w in weights.items() if w < 0}
    if bad:
        raise ValueError(f"{owner}: modal_weights must be non-negative, got {bad}.")
    given = {m: float(w) for m, w in weights.items() if m in names}
    rest = [m for m in names if m not in given]
    mass = sum(given.values())
    if rest:
        if mass > 1.0 + 1e-9:
            raise ValueError(
                f"{owner}: modal_weights {given} sum to {mass:.3g} > 1, leaving nothing for {rest}; "
                "give weights that sum to at most 1 or name every modality."
            )
        share = (1.0 - mass) / len(rest)
        return {m: given.get(m, share) for m in names}
    if mass <= 0:
        raise ValueError(f"{owner}: modal_weights {given} sum to 0; give a positive weight.")
    return {m: given[m] / mass for m in names}


def knn_item_graph(
    features: Tensor, k: int, knn: KNNBuilder | None = None, include_self: bool = True
) -> tuple[Tensor, Tensor]:
    """The top-``k`` cosine neighbours of every item as edges, found with faiss.

    With ``include_self`` (MMRec's dense ``topk`` over a similarity matrix whose diagonal is 1) each
    item lists itself and its ``k - 1`` most similar other items.

    Returns:
        ``(edge_index, similarity)``: edges ``[2, E]`` from a neighbour (``edge_index[0]``) to the
        item that lists it (``edge_index[1]``), and their cosine similarities ``[E]`` (detached).
    """
    knn = knn or KNNBuilder(progress=False)
    x = features.detach().float().cpu().numpy()
    n = x.shape[0]
    nbr, sim = knn.neighbors(x, k - 1 if include_self else k)
    nbr, sim = torch.from_numpy(nbr), torch.from_numpy(sim)
    if include_self:  # cosine with itself: 1, or 0 for a zero row
        own = torch.from_numpy((x != 0).any(1)).float().view(-1, 1)
        nbr = torch.cat([torch.arange(n).view(-1, 1), nbr], dim=1)
        sim = torch.cat([own, sim], dim=1)
    dst = torch.arange(n).view(-1, 1).expand_as(nbr)
    valid = nbr >= 0  # an approximate index may return fewer than k
    edge_index = torch.stack([nbr[valid], dst[valid]]).long()
    return edge_index.to(features.device), sim[valid].to(features.device)


def knn_normalize(edge_index: Tensor, edge_weight: Tensor, num_nodes: int) -> Tensor:
    r"""MMRec's normalisation of an item-item kNN graph, differentiable in ``edge_weight``:

    .. math::
        \tilde{S}_{ij} = d_i^{-1/2} S_{ij} d_j^{-1/2}, \qquad d_i = \sum_j S_{ij}

    where row :math:`i` is the item that lists neighbour :math:`j` (edge ``j -> i``), so :math:`d`
    is the row sum (FREEDOM: binary :math:`S`, :math:`d_i = k`; LATTICE: similarities). A node with
    :math:`d \le 0` gets weight 0.
    """
    src, dst = edge_index
    deg = torch.zeros(num_nodes, dtype=edge_weight.dtype, device=edge_weight.device)
    deg = deg.index_add(0, dst, edge_weight)
    inv = torch.where(deg > 0, deg.clamp(min=1e-12).pow(-0.5), torch.zeros_like(deg))
    return edge_weight * inv[dst] * inv[src]


def mixed_knn_item_graph(
    features: Mapping[str, Tensor],
    k: int,
    weights: Mapping[str, float],
    knn: KNNBuilder | None = None,
    present: Mapping[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    r"""FREEDOM's frozen item-item graph on raw features (also the authors' E-MMKGR code's):

    .. math::
        \mathbf{S} = \sum_m w_m\, \mathbf{D}_m^{-1/2} \mathbf{S}_m \mathbf{D}_m^{-1/2}

    with :math:`\mathbf{S}_m` the binary top-``k`` cosine graph of modality :math:`m`, each item
    listing itself and its ``k - 1`` nearest other items (:func:`knn_item_graph`), so every row
    has degree ``k`` and every edge of :math:`\mathbf{S}_m` weighs :math:`1/k` (when the lists
    are symmetric; in general :math:`1/\sqrt{d_i d_j}` with row degrees :math:`d`).

    Args:
        features: ``{m: [n_items, d_m]}`` dense per-item features (:func:`dense_modal_features`).
        k: neighbours per item, itself included.
        weights: :math:`w_m` for every modality of ``features`` (:func:`resolve_modal_weights`).
        knn: the faiss kNN builder (default: exact).
        present: ``{m: bool [n_items]}``, the items that have modality ``m``
            (:func:`modal_presence`). ``None`` (MMRec): every row of ``features`` takes part, so the
            mean-filled rows of items lacking ``m`` are all identical and become one another's
            neighbours. Given: :math:`\mathbf{S}_m` is the kNN graph among the items that have
            ``m`` only, and an item's weights are renormalised over the modalities it has,
            :math:`w_m(i) = w_m / \sum_{m' \ni i} w_{m'}`; an item with no modality keeps a
            self-loop of weight 1.

    Returns:
        ``(edge_index [2, E], edge_weight [E])``, edges neighbour -> item (``E = M N k`` without
        ``present``; duplicates across modalities are kept, a sparse matmul sums them).
    """
    if k < 1:
        raise ValueError(f"mixed_knn_item_graph: k must be at least 1, got {k}.")
    knn = knn or KNNBuilder(progress=False)
    x0 = next(iter(features.values()))
    n, device = x0.size(0), x0.device
    every = torch.ones(n, dtype=torch.bool, device=device)
    has = {m: every if present is None else present[m].to(device=device, dtype=torch.bool) for m in features}
    # the weight mass of each item's modalities: w_m is shared out over those an item has
    mass = None if present is None else sum(weights[m] * has[m].double() for m in features)
    indices, values = [], []
    for m, x in features.items():
        rows = has[m].nonzero().view(-1)
        if rows.numel() == 0:
            continue
        ei, _ = knn_item_graph(x[rows], min(k, rows.numel()), knn)
        w = knn_normalize(ei, torch.ones(ei.size(1), device=device), rows.numel())
        ei = rows[ei]
        if mass is None:
            share = torch.full((n,), weights[m], dtype=torch.float64, device=device)
        else:
            share = torch.where(mass > 0, weights[m] / mass.clamp(min=1e-300), torch.zeros_like(mass))
        indices.append(ei)
        values.append(share[ei[1]].float() * w)
    if mass is not None:  # an item with no modality keeps itself
        alone = (mass == 0).nonzero().view(-1)
        indices.append(torch.stack([alone, alone]))
        values.append(torch.ones(alone.numel(), device=device))
    return torch.cat(indices, dim=1), torch.cat(values)

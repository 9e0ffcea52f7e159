r"""Pieces the multimodal baselines share: dense per-item modality features (mean fill), per-modality
mixing weights, trainable feature tables with their projections, and item-item kNN graphs through
faiss with MMRec's normalisation. What every model shares (ID embeddings, layer combinations, BPR,
frozen feature tables) is in :mod:`emmkgr_pyg.nn.blocks`.

The baselines read their modality features from the E-MMKG (:func:`modality_types`): every node
type but ``item`` that carries ``x``, in the graph's order. Nothing here names a modality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.emmkg import ITEM
from ..graph.knn import KNNBuilder


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


class ModalFeatures(torch.nn.Module):
    r"""Per modality, a feature table initialised from the raw features and a linear map into the
    model's feature space, :math:`\mathbf{f}^m_i = \mathbf{W}^m \mathbf{x}^m_i + \mathbf{b}^m`.

    MMRec's baselines train the tables (``nn.Embedding.from_pretrained(..., freeze=False)``).

    Args:
        features: ``{m: [n_items, d_m]}`` dense per-item features (see :func:`dense_modal_features`).
        dim: output size (default ``64``).
        train_features: make the tables trainable (default ``True``, as MMRec).
        init: ``"default"`` (``nn.Linear``'s) or ``"xavier_normal"`` (BM3) for the weights.
    """

    def __init__(
        self,
        features: Mapping[str, Tensor],
        dim: int = 64,
        train_features: bool = True,
        init: str = "default",
    ) -> None:
        super().__init__()
        if init not in ("default", "xavier_normal"):
            raise ValueError(f"ModalFeatures: init '{init}' is not 'default' or 'xavier_normal'.")
        self.names = list(features)
        self.dim, self.init = dim, init
        self.tables = torch.nn.ModuleDict(
            {
                m: torch.nn.Embedding.from_pretrained(x.clone(), freeze=not train_features)
                for m, x in features.items()
            }
        )
        self.proj = torch.nn.ModuleDict({m: torch.nn.Linear(x.size(1), dim) for m, x in features.items()})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialises the projections (the tables keep their values)."""
        for lin in self.proj.values():
            lin.reset_parameters()
            if self.init == "xavier_normal":
                torch.nn.init.xavier_normal_(lin.weight)

    def forward(self, m: str, items: Tensor | None = None) -> Tensor:
        """Projected features of modality ``m``: ``[n_items, dim]``, or ``[len(items), dim]``."""
        x = self.tables[m].weight if items is None else self.tables[m](items)
        return self.proj[m](x)


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

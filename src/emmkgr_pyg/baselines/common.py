r"""Pieces the multimodal baselines share: trainable feature tables with their projections. The
item-item kNN graphs, dense per-item modality features and mixing weights live in
:mod:`emmkgr_pyg.graph.item_graph` (E-MMKGR's authors' fusion uses them too); they are re-exported
here. What every model shares (ID embeddings, layer combinations, BPR, the L2 term, frozen feature
tables) is in :mod:`emmkgr_pyg.nn.blocks`.

Nothing here names a modality.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..graph.item_graph import (
    dense_modal_features,
    knn_item_graph,
    knn_normalize,
    mixed_knn_item_graph,
    modal_presence,
    modality_types,
    resolve_modal_weights,
)

__all__ = [
    "ModalFeatures",
    "dense_modal_features",
    "knn_item_graph",
    "knn_normalize",
    "mixed_knn_item_graph",
    "modal_presence",
    "modality_types",
    "resolve_modal_weights",
]


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
        """Projected features of modality ``m``: ``[n_items, dim]``, or ``[*items.shape, dim]``.

        ``items`` longer than the table (several negatives per interaction) project every row once
        and index the result: the same values, fewer products."""
        table = self.tables[m]
        if items is None or items.numel() > table.num_embeddings:
            x = self.proj[m](table.weight)
            return x if items is None else x[items]
        return self.proj[m](table(items))

r"""E-MMKGR whose item space is searchable by its own query mapping: a search-alignment term keeps
each projected modality node :math:`\mathbf{z}^{m}_i = f^{m}_{proj}(\hat{\mathbf{m}}_i)` closest to
its own item's :math:`\mathbf{h}^{MM}_i` among the items of a batch (InfoNCE, cosine, temperature
:math:`\tau`),

.. math::
    \mathcal{L}_{align} = -\frac{1}{|M|} \sum_{m} \frac{1}{|B_m|} \sum_{i \in B_m}
        \log \frac{\exp(\cos(\mathbf{z}^{m}_i, \mathbf{h}^{MM}_i) / \tau)}
                  {\sum_{j \in B_m} \exp(\cos(\mathbf{z}^{m}_i, \mathbf{h}^{MM}_j) / \tau)}

added to the KG loss with weight ``align_weight``. The paper's search mapping (Eq. 7) compares
:math:`f_{proj}(f_{enc}(q))` with :math:`\mathbf{H}^{MM}`; nothing in Eqs. 5-6 asks those two to be
comparable, this term does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.interaction import InteractionGraph
from .recommender import EMMKGR, Embeddings, KGBatch


class SearchableEMMKGR(EMMKGR):
    """:class:`EMMKGR` plus the search-alignment term (module docstring).

    Args:
        inter, kg: as :class:`EMMKGR`.
        align_weight: weight of :math:`\\mathcal{L}_{align}` (default ``0.1``; ``0`` = E-MMKGR).
        align_temperature: :math:`\\tau` (default ``0.1``).
        align_batch: modality nodes per modality and step (default ``1024``).
        **kwargs: the other :class:`EMMKGR` arguments.
    """

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData,
        align_weight: float = 0.1,
        align_temperature: float = 0.1,
        align_batch: int = 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(inter, kg, **kwargs)
        if align_temperature <= 0:
            raise ValueError(f"SearchableEMMKGR: align_temperature {align_temperature} must be > 0.")
        self.align_weight, self.align_temperature, self.align_batch = (
            align_weight,
            align_temperature,
            align_batch,
        )
        for i, m in enumerate(self.encoder.modalities):
            self.register_buffer(f"owner_{i}", kg[m].item.long(), persistent=False)

    def kg_losses(self, emb: Embeddings, batch: KGBatch) -> dict[str, Tensor]:
        losses = super().kg_losses(emb, batch)
        if self.align_weight:
            losses["align"] = self.align_weight * self.align_loss(emb.extra["H_mm"])
        return losses

    def align_loss(self, h_mm: Tensor) -> Tensor:
        """:math:`\\mathcal{L}_{align}` on a random batch of each modality's nodes."""
        terms = []
        for i in range(len(self.encoder.modalities)):
            owner = getattr(self, f"owner_{i}")
            rows = torch.randperm(owner.numel(), device=owner.device)[: self.align_batch]
            z = self.encoder.project(i, self.encoder.features(i)[rows], reduced=True)
            logits = F.normalize(z, dim=-1) @ F.normalize(h_mm[owner[rows]], dim=-1).T
            target = torch.arange(rows.numel(), device=logits.device)
            terms.append(F.cross_entropy(logits / self.align_temperature, target))
        return torch.stack(terms).mean()

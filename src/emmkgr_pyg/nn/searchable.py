r"""E-MMKGR with the search-alignment term on: each projected modality node
:math:`\mathbf{z}^{m}_i = f^{m}_{proj}(\hat{\mathbf{m}}_i)` kept closest to its own item's
:math:`\mathbf{h}^{MM}_i` among the items of a batch (InfoNCE; :class:`EMMKGR`'s ``align_weight``),
so that queries mapped by :math:`f_{proj}` (Eq. 7) land near their items. The term lives in
:class:`EMMKGR` (``conf/model/emmkgr_search.yaml`` turns it on there); this class only turns it on
by default, for runs saved before the term moved, whose configs name it.
"""

from __future__ import annotations

from typing import Any

from torch_geometric.data import HeteroData

from ..graph.interaction import InteractionGraph
from .emmkgr import EMMKGR


class SearchableEMMKGR(EMMKGR):
    """:class:`EMMKGR` with ``align_weight`` ``0.1`` by default (module docstring)."""

    def __init__(
        self, inter: InteractionGraph, kg: HeteroData, align_weight: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(inter, kg, align_weight=align_weight, **kwargs)

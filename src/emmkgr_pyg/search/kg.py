r"""Search as link prediction in the E-MMKG: a text query becomes a node of each query modality
:math:`m`, and items are ranked by how well the trained relation :math:`m\_of` (RotatE, Eq. 5)
leads from that node to them,

.. math::
    s(q, i) = -\frac{1}{|M_q|} \sum_{m \in M_q}
        \| \mathbf{h}^{m}_q \circ \mathbf{r}_{m\_of} - \mathbf{h}^{MM}_i \|

where :math:`\mathbf{h}^{m}_q` is the query's modality node: attached to its top-n most similar
nodes of :math:`m` and propagated by the trained encoder (``node: propagated``,
:meth:`~emmkgr_pyg.nn.inductive.InductivePropagator.embed_modal`), or only projected,
:math:`f^{m}_{proj}(f^{m}_{enc}(q))` (``node: projected``), and the distance is the run's
(``kg_norm``). The item-modal facts ``(m_j, m_of, i_j)`` are what the KG loss trained the relation
on, so this scores exactly the triples the graph was taught.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..graph.emmkg import ITEM
from ..nn.encoder import EMMKGEncoder
from ..nn.inductive import InductivePropagator
from ..nn.kge import rotate_distance
from .errors import SearchError

#: how the query's modality node is embedded
KG_NODES = ("propagated", "projected")


class KGSearch:
    r"""Items scored by the RotatE distance from the query's modality nodes through ``<m>_of``.

    Args:
        encoder: the trained :class:`EMMKGEncoder`.
        phases: the trained relation phases ``[R, d/2]`` (relation id = position in
            ``encoder.view.relations``).
        items: the items' :math:`\mathbf{H}^{MM}` ``[N, d]``.
        norm: the run's RotatE distance (``kg_norm``; default ``"complex_l1"``).
        propagator: needed by ``node="propagated"``.
        node: ``"propagated"`` or ``"projected"`` (default ``"propagated"``).
    """

    def __init__(
        self,
        encoder: EMMKGEncoder,
        phases: torch.Tensor,
        items: torch.Tensor | np.ndarray,
        norm: str = "complex_l1",
        propagator: InductivePropagator | None = None,
        node: str = "propagated",
    ) -> None:
        if node not in KG_NODES:
            raise SearchError(f"search.kg_node={node}: choose one of {KG_NODES}.")
        if node == "propagated" and propagator is None:
            raise SearchError("KGSearch: node 'propagated' needs an InductivePropagator.")
        self.encoder, self.norm, self.node, self.propagator = encoder, norm, node, propagator
        self.modalities = list(encoder.modalities)
        rel = {r: k for k, r in enumerate(encoder.view.relations)}
        self.phase = {}
        for m in self.modalities:
            key = (m, f"{m}_of", ITEM)
            if key in rel:
                self.phase[m] = phases[rel[key]].detach().float()
        self.items = torch.as_tensor(np.asarray(items, dtype=np.float32))

    @classmethod
    def from_run(cls, run, items: np.ndarray, node: str = "propagated", top_n: int | None = None) -> KGSearch:
        """The KG search of a loaded E-MMKGR run over its items' :math:`\\mathbf{H}^{MM}`."""
        model = run.model
        encoder = getattr(model, "encoder", None)
        relations = getattr(model, "relations", None)
        if not isinstance(encoder, EMMKGEncoder) or relations is None:
            raise SearchError(f"run_dir={run.run_dir}: KG search needs a run trained with model=emmkgr.")
        propagator = None
        if node == "propagated":
            n = int(top_n if top_n is not None else run.cfg.graph.get("top_n", 10))
            propagator = InductivePropagator(encoder, run.kg, top_n=n)
        norm = getattr(model, "kg_norm", "complex_l1")
        return cls(encoder, relations.phase.weight, items, norm, propagator, node)

    @torch.no_grad()
    def query_nodes(self, raw: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The query's node ``[B, d]`` in each modality of ``raw`` (``{modality: [B, F_m]}``)."""
        missing = [m for m in raw if m not in self.phase]
        if missing:
            raise SearchError(f"KG search: modalities {missing} have no '<m>_of' relation in the run.")
        if self.node == "projected":
            return {
                m: self.encoder.project(self.modalities.index(m), torch.from_numpy(np.asarray(x, np.float32)))
                for m, x in raw.items()
            }
        b = len(next(iter(raw.values())))
        contents = [{m: np.asarray(x[j]) for m, x in raw.items()} for j in range(b)]
        return {m: self.propagator.embed_modal(contents, m) for m in raw}

    @torch.no_grad()
    def scores(self, raw: Mapping[str, np.ndarray], modalities: Sequence[str] | None = None) -> np.ndarray:
        """``[B, N]``: minus the mean RotatE distance over the query modalities."""
        raw = {m: raw[m] for m in (modalities or raw)}
        if not raw:
            raise SearchError("KG search: no query modality.")
        nodes = self.query_nodes(raw)
        b = len(next(iter(nodes.values())))
        total = torch.zeros(b, len(self.items))
        for m, h in nodes.items():
            for s in range(0, b, 32):  # [32, N, d/2] at a time
                total[s : s + 32] += rotate_distance(
                    h[s : s + 32].unsqueeze(1), self.phase[m], self.items.unsqueeze(0), self.norm
                )
        return (-total / len(nodes)).numpy()

r"""New items attached to a trained E-MMKG without retraining: their :math:`\mathbf{h}^{MM}` by the
trained encoder's propagation (Eq. 4) over the graph extended with them.

Search uses it twice: a query mapped as a new item whose only content is the query (the
``propagated`` mapping of :mod:`emmkgr_pyg.search.query`), and cold-start items
(:mod:`emmkgr_pyg.search.cold_start`). :class:`InductivePropagator` states the rule and when it
is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import faiss
import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.emmkg import ITEM, ITEM_ITEM, item_modal_relation, modal_modal_relation
from ..graph.knn import normalize_rows
from .encoder import EMMKGEncoder


class InductivePropagator:
    r"""The :math:`\mathbf{h}^{MM}` of new items attached to a trained E-MMKG, without retraining.

    A new item :math:`q` with content in modalities :math:`M_q` gets one node per modality,
    :math:`\mathbf{z}^{m}_q = f^{m}_{proj}(\hat{\mathbf{m}}_q)`, and an item node with
    :math:`\mathbf{e}_q = \mathbf{0}` (it has no learned id embedding). It is wired as the trained
    graph wires items: item-modal edges :math:`q - m_q`, modal-modal edges from :math:`m_q` to its
    top-n nodes :math:`N_m(q)` of modality :math:`m` by cosine of raw features (Eq. 2), and, when
    the graph has them, item-item edges to the items owning :math:`N_m(q)`; every new edge both
    ways. With degrees :math:`d` of the graph with :math:`q` added (an existing node :math:`j` gains
    the edges to :math:`q`'s nodes), the new nodes propagate as Eq. 4:

    .. math::
        \mathbf{h}^{(l)}_s = \sum_{t \in N(s),\, t \text{ new}}
            \frac{\mathbf{h}^{(l-1)}_t}{\sqrt{d_s d_t}}
          + \sum_{j \in N(s),\, j \text{ existing}} \frac{\mathbf{H}^{(l-1)}_j}{\sqrt{d_s d_j}},
        \qquad
        \mathbf{h}^{MM}_q = \frac{1}{L+1} \sum_{l=0}^{L} \mathbf{h}^{(l)}_q

    where :math:`\mathbf{H}^{(l)}` are the existing nodes' layers in the trained graph, kept fixed.
    Without item-item edges and with :math:`L \le 2` (the default) this is exactly the item's
    embedding in the graph with :math:`q` added (its layer-2 term reaches existing nodes only at
    layer 0); for deeper encoders it neglects :math:`q`'s effect on the existing nodes. Items of one
    batch are embedded independently (never attached to each other).

    Args:
        encoder: the trained :class:`EMMKGEncoder`.
        kg: the E-MMKG it was trained on (its features find the neighbours; its ``item`` vectors
            name the items owning modality nodes).
        top_n: neighbours per new modality node (default ``10``, as the graph's ``top_n``).

    Shapes:
        - :meth:`embed`: ``B`` dicts ``{modality: raw features [F_m]}`` -> ``[B, d]``
    """

    def __init__(self, encoder: EMMKGEncoder, kg: HeteroData, top_n: int = 10) -> None:
        self.encoder = encoder
        self.top_n = top_n
        view = encoder.view
        self.modalities = list(encoder.modalities)
        relations = set(view.relations)
        self.item_modal = {m: item_modal_relation(m) in relations for m in self.modalities}
        self.modal_modal = {m: modal_modal_relation(m) in relations for m in self.modalities}
        self.item_item = ITEM_ITEM in relations
        self.self_loops = bool(encoder.conv.add_self_loops)
        self.owners = {m: kg[m].item.long() for m in self.modalities}
        self.offsets = dict(view.offsets)
        with torch.no_grad():
            h = encoder.initial_embeddings()
            self.layers = [h]
            for _ in range(encoder.num_layers - 1):
                h = encoder.conv(h, encoder.edge_index)
                self.layers.append(h)
        deg = torch.bincount(encoder.edge_index[1], minlength=view.num_nodes).double()
        self.degree = deg + (1.0 if self.self_loops else 0.0)
        self.knn: dict[str, faiss.Index] = {}
        for m in self.modalities:
            # the graph's own features (Eq. 2), also when the encoder trained its copy of them
            x = normalize_rows(kg[m].x.detach().cpu().numpy())
            index = faiss.IndexFlatIP(x.shape[1])
            index.add(x)
            self.knn[m] = index

    def feature_dim(self, modality: str) -> int:
        return int(self.knn[modality].d)

    @torch.no_grad()
    def embed(self, contents: Sequence[Mapping[str, np.ndarray]]) -> Tensor:
        """:math:`\\mathbf{h}^{MM}` ``[B, d]`` of new items given their raw modality features."""
        return self._propagate(contents)[0][: len(contents)]

    @torch.no_grad()
    def embed_modal(self, contents: Sequence[Mapping[str, np.ndarray]], modality: str) -> Tensor:
        """:math:`\\mathbf{h}^{MM}` ``[B, d]`` of the new items' ``modality`` nodes (the same
        propagation); each item needs content in that modality."""
        h, nodes = self._propagate(contents)
        if modality not in nodes or len(nodes[modality][0]) != len(contents):
            raise ValueError(f"embed_modal: every new item needs content in modality '{modality}'.")
        rows, ids = nodes[modality]
        out = torch.empty(len(contents), h.size(1))
        out[rows] = h[ids]
        return out

    @torch.no_grad()
    def _propagate(
        self, contents: Sequence[Mapping[str, np.ndarray]]
    ) -> tuple[Tensor, dict[str, tuple[Tensor, Tensor]]]:
        """Every new node's :math:`\\mathbf{h}^{MM}` (the ``B`` items first) and, per modality,
        (the items with content in it, their node rows)."""
        b = len(contents)
        for j, c in enumerate(contents):
            unknown = [m for m in c if m not in self.knn]
            if unknown:
                raise ValueError(f"new item {j}: unknown modality {unknown}; the run has {self.modalities}.")
            if not any(self.item_modal[m] for m in c):
                raise ValueError(
                    f"new item {j}: no content in a modality linked to items (it has {sorted(c)}); "
                    f"give content for one of {[m for m in self.modalities if self.item_modal[m]]}."
                )
        z_parts, owner_parts, nodes = [], [], {}
        int_src, int_dst = [], []  # new-new edges (one direction; mirrored below)
        ext_new, ext_old = [], []  # new node, existing node
        n_new = b
        for i, m in enumerate(self.modalities):
            rows = [j for j, c in enumerate(contents) if m in c]
            if not rows:
                continue
            x = np.stack([np.asarray(contents[j][m], dtype=np.float32).reshape(-1) for j in rows])
            if x.shape[1] != self.feature_dim(m):
                raise ValueError(
                    f"modality '{m}': content of dimension {x.shape[1]}, the run's features have "
                    f"{self.feature_dim(m)}; encode it with the run's f_enc for '{m}'."
                )
            z_parts.append(self.encoder.project(i, torch.from_numpy(x)))
            ids = torch.arange(n_new, n_new + len(rows))
            owner = torch.tensor(rows)
            owner_parts.append(owner)
            nodes[m] = (owner, ids)
            if self.item_modal[m]:
                int_src.append(owner)
                int_dst.append(ids)
            if self.modal_modal[m] or self.item_item:
                k = min(self.top_n, self.knn[m].ntotal)
                _, nbr = self.knn[m].search(normalize_rows(x), k)
                nbr = torch.from_numpy(nbr)
                valid = nbr >= 0
                if self.modal_modal[m]:
                    ext_new.append(ids.unsqueeze(1).expand_as(nbr)[valid])
                    ext_old.append(nbr[valid] + self.offsets[m])
                if self.item_item:
                    items = self.owners[m][nbr.clamp(min=0)]
                    ext_new.append(owner.unsqueeze(1).expand_as(nbr)[valid])
                    ext_old.append(items[valid] + self.offsets[ITEM])
            n_new += len(rows)
        d = self.encoder.dim
        h0 = torch.cat([torch.zeros(b, d)] + z_parts) if z_parts else torch.zeros(b, d)
        none = torch.zeros(0, dtype=torch.long)
        new = torch.cat(ext_new) if ext_new else none
        old = torch.cat(ext_old) if ext_old else none
        # item-item pairs found through several modalities are one edge, as in the trained graph
        new, old = torch.unique(torch.stack([new, old]), dim=1)
        item = torch.cat([torch.arange(b)] + owner_parts)[new]  # the new item of each new node
        isrc = torch.cat(int_src) if int_src else none
        idst = torch.cat(int_dst) if int_dst else none
        deg_new = torch.bincount(torch.cat([isrc, idst, new]), minlength=n_new).double()
        deg_new += 1.0 if self.self_loops else 0.0
        # an existing node gains one edge per node of the same new item that links to it
        _, inverse, counts = torch.unique(
            torch.stack([item, old]), dim=1, return_inverse=True, return_counts=True
        )
        deg_old = self.degree[old] + counts[inverse].double()
        w_ext = (deg_new[new] * deg_old).rsqrt().float()
        size = (n_new, self.degree.numel())
        a_ext = torch.sparse_coo_tensor(
            torch.stack([new, old]), w_ext, size, check_invariants=False
        ).coalesce()
        src = torch.cat([isrc, idst])
        dst = torch.cat([idst, isrc])
        if self.self_loops:
            loop = torch.arange(n_new)
            src, dst = torch.cat([src, loop]), torch.cat([dst, loop])
        w_int = (deg_new[src] * deg_new[dst]).rsqrt().float()
        a_int = torch.sparse_coo_tensor(
            torch.stack([dst, src]), w_int, (n_new, n_new), check_invariants=False
        ).coalesce()
        h, out = h0, h0.clone()
        for layer in range(self.encoder.num_layers):
            h = torch.sparse.mm(a_int, h) + torch.sparse.mm(a_ext, self.layers[layer])
            out += h
        return out / (self.encoder.num_layers + 1), nodes

r"""E-MMKGR for recommendation (paper section 3.3): the interaction graph's LightGCN and the E-MMKG
encoder, fused into the item representation (:class:`EMMKGR`), and the item-item graph that the
E-MMKG's modal-modal edges induce (:func:`item_item_graph`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.interaction import InteractionGraph, user_cooccurrence_graph
from ..graph.item_graph import (
    dense_modal_features,
    mixed_knn_item_graph,
    modal_presence,
    resolve_modal_weights,
)
from .blocks import (
    embedding_reg,
    last_layer,
)
from .conv import LightGCNConv, lightgcn_norm, sparse_adjacency, spmm_with_transpose
from .encoder import EMMKGEncoder
from .kge import KGLoss, RelationPhases, rotate_distance
from .recommender import MM_ITEM, Embeddings, KGBatch, LightGCN, Recommender

#: the gamma of the RotatE reference code and the authors, which sets their initial embedding range
ROTATE_INIT_GAMMA = 12.0

#: how EMMKGR fuses the E-MMKG into the item representation
FUSIONS = ("sum", "item_graph", "authors")
#: where EMMKGR's item-item graph comes from
ITEM_GRAPHS = ("modal_edges", "knn")
#: initialisations of the E-MMKG's item table
KG_INITS = ("xavier_uniform", "rotate")


class EMMKGR(Recommender):
    r"""E-MMKGR for recommendation (paper section 3.3): LightGCN on the interactions plus the
    E-MMKG encoder, trained with BPR (Eq. 6) and the RotatE KG loss (Eq. 5) on
    :math:`\mathbf{H}^{MM}`; users are scored as :math:`\hat y_{ui} = \mathbf{h}^{IN}_u \cdot
    \mathbf{h}_i`. The item representation :math:`\mathbf{h}_i` is one of three ``fusion`` forms
    (:math:`[\cdot]_{:d}` keeps the first ``dim`` entries of a ``kg_dim`` vector):

    - ``"sum"`` (the paper): :math:`\mathbf{H}_{item} = \mathbf{H}^{IN}_{item} +
      [\mathbf{H}^{MM}_{item}]_{:d}`;
    - ``"item_graph"``: :math:`\mathbf{H}_{item} = \mathbf{H}^{IN}_{item} +
      \tilde{\mathbf{A}}_{ii}^{L_{ii}} (\mathbf{H}^{IN}_{item} + [\mathbf{H}^{MM}_{item}]_{:d})`;
    - ``"authors"`` (the authors' code, ``final_forward``): the *raw* item rows of the KG table,
      before KG propagation, :math:`\mathbf{H}_{item} = \mathbf{H}^{IN}_{item} +
      \tilde{\mathbf{A}}_{ii}^{L_{ii}} (\mathbf{H}^{IN}_{item} + [\mathbf{E}^{i}_{kg}]_{:d})`; the
      KG propagation then feeds the item representation only through the KG loss's gradient on
      the shared tables.

    :math:`\tilde{\mathbf{A}}_{ii}` (``item_graph``, frozen, sparse) is either ``"modal_edges"``:
    the mean over modalities of the normalised graphs that the E-MMKG's ``similar_<m>`` edges
    induce on items (:func:`item_item_graph`), or ``"knn"`` (the authors' and FREEDOM's): the
    top-``item_graph_k`` cosine graph of each modality's raw features, the item itself included,
    each edge :math:`1/k`, mixed with ``item_graph_weights``
    (:func:`~emmkgr_pyg.graph.item_graph.mixed_knn_item_graph`).

    Args:
        inter: the training interaction graph.
        kg: the E-MMKG.
        dim: :math:`d`, embedding size of the user-item graph (default ``64``).
        num_layers: LightGCN layers on the interaction graph (default ``2``).
        kg_layers: encoder layers on the E-MMKG (default ``2``).
        kg_dim: embedding size of the E-MMKG (even, RotatE is complex; at least ``dim``), or
            ``None`` for ``dim`` (default ``None``; the authors: ``2 dim``).
        kg_init: the KG item table's initialisation: ``"xavier_uniform"``, or ``"rotate"``
            (the authors: uniform in :math:`\pm(\gamma + 2) / (kg\_dim / 2)`; default
            ``"xavier_uniform"``).
        projection: :math:`f_{proj}`, ``"linear"`` or ``"mlp"`` (default ``"linear"``).
        proj_norm: L2 norm of projected modality nodes, or ``None`` (default ``None``).
        train_features: make modality features trainable (default ``False``).
        add_self_loops: self-loops in the E-MMKG adjacency (default ``False``).
        reg_weight: L2 weight on the batch's layer-0 embeddings: user and item IDs and the
            :math:`[\mathbf{E}^{i}_{kg}]_{:d}` rows of the items (default ``1e-4``).
        reg_form: the L2 terms' form (:func:`~emmkgr_pyg.nn.blocks.embedding_reg`; default
            ``"mmrec"``).
        kg_reg_weight: L2 weight on the KG batch's head and tail embeddings (default ``0``).
        kg_norm: RotatE distance, see :func:`rotate_distance` (default ``"complex_l1"``).
        kg_loss: keyword arguments of :class:`KGLoss` (default: pairwise, Eq. 5; a log-sigmoid
            gamma defaults to ``"auto"``, calibrated per relation at initialisation).
        fusion: ``"sum"``, ``"item_graph"`` or ``"authors"`` (default ``"sum"``).
        item_graph: ``"modal_edges"`` or ``"knn"`` (default ``"modal_edges"``).
        item_graph_layers: :math:`L_{ii}` (default ``1``).
        item_graph_k: neighbours per item of the ``"knn"`` graph, itself included (default ``10``).
        item_graph_missing: items lacking a modality in the ``"knn"`` graph: ``"mean"`` (the
            authors' code and MMRec: the mean row) or ``"skip"`` (the kNN graph among the items that
            have it; :func:`~emmkgr_pyg.graph.item_graph.mixed_knn_item_graph`).
        item_graph_weights: per-modality weights of the ``"knn"`` graph
            (:func:`~emmkgr_pyg.graph.item_graph.resolve_modal_weights`; default ``None``: uniform).
        feature_dim: see :class:`EMMKGEncoder` (default ``None``: features as they are).
        backend: sparse backend (default ``"auto"``).
        prune_ratio: FREEDOM's degree-sensitive pruning of the user-item graph in training (an
            extension, ``+experiment=prune``; see :class:`LightGCN`; default ``0``).
        modal_bpr_weight: weight of ``modal_bpr`` (an extension), BPR of the user against each of
            the item's modality nodes in :math:`\mathbf{H}^{MM}`:
            :math:`\sum_m \mathrm{BPR}(\mathbf{h}^{IN}_u, [\mathbf{h}^{MM}_{m(i)}]_{:d},
            [\mathbf{h}^{MM}_{m(j)}]_{:d})`, a zero vector where an item lacks :math:`m`; it ties
            every modality node to the users who bought its item, as FREEDOM's BPR on projected
            features does (default ``0``: none; no validation gain measured on Office, see
            ``conf/model/emmkgr.yaml``). Refused with the ``"authors"`` fusion.
        align_weight: weight of ``align`` (an extension, added to the KG loss), the search-alignment
            term: each projected modality node :math:`\mathbf{z}^{m}_i = f^{m}_{proj}(\hat{\mathbf{m}}_i)`
            kept closest to its own item's :math:`\mathbf{h}^{MM}_i` among the items of a batch
            (InfoNCE over cosines, temperature ``align_temperature``),
            :math:`-\frac{1}{|M|} \sum_m \frac{1}{|B_m|} \sum_{i \in B_m} \log
            \frac{\exp(\cos(\mathbf{z}^{m}_i, \mathbf{h}^{MM}_i) / \tau)}{\sum_{j \in B_m}
            \exp(\cos(\mathbf{z}^{m}_i, \mathbf{h}^{MM}_j) / \tau)}`. The paper's search (Eq. 7)
            compares :math:`f_{proj}(f_{enc}(q))` with :math:`\mathbf{H}^{MM}`; nothing in Eqs. 5-6
            asks those two to be comparable, this term does (default ``0``: none).
        align_temperature: :math:`\tau` of ``align`` (default ``0.1``).
        align_batch: modality nodes per modality and step in ``align`` (default ``1024``).
        user_graph_k: an extension (DualGNN's and DRAGON's user co-occurrence graph): each user
            adds its ``k`` co-occurring users' representations,
            :math:`\hat{\mathbf{h}}_u = \mathbf{h}^{IN}_u + \sum_{v \in \mathcal{N}_k(u)}
            \beta_{uv} \mathbf{h}^{IN}_v`, :math:`\beta_{uv}` the softmax over :math:`v` of
            their common training items (:func:`~emmkgr_pyg.graph.interaction.user_cooccurrence`);
            frozen, built once from the training interactions (default ``0``: none, the paper).
        user_side: an extension: each user adds the mean of its training items' multimodal part
            (the term the fusion adds to :math:`\mathbf{H}^{IN}_{item}`, e.g.
            :math:`\tilde{\mathbf{A}}_{ii}(\mathbf{H}^{IN}_{item} + [\mathbf{H}^{MM}_{item}]_{:d})`),
            :math:`\hat{\mathbf{h}}_u = \mathbf{h}^{IN}_u + \frac{1}{|N_u|} \sum_{i \in N_u}
            \mathbf{s}_i`, so that a user carries the E-MMKG's content of what it bought, not only
            what the ID graph propagates (default ``False``: the paper).

    Shapes:
        - :meth:`embed`: ``user`` ``[U, dim]``, ``item`` ``[N, dim]``, ``extra["H_mm"]``
          ``[total KG nodes, kg_dim]`` (left out in training under ``"authors"``, which does not
          read it), ``extra["H_in_item"]`` ``[N, dim]``
    """

    needs_features = True
    needs_modal_edges = True
    has_kg_loss = True

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData,
        dim: int = 64,
        num_layers: int = 2,
        kg_layers: int = 2,
        projection: str = "linear",
        proj_norm: float | None = None,
        train_features: bool = False,
        add_self_loops: bool = False,
        reg_weight: float = 1e-4,
        kg_reg_weight: float = 0.0,
        kg_norm: str = "complex_l1",
        kg_loss: dict[str, Any] | None = None,
        fusion: str = "sum",
        item_graph: str = "modal_edges",
        item_graph_layers: int = 1,
        item_graph_k: int = 10,
        item_graph_missing: str = "mean",
        item_graph_weights: Mapping[str, float] | None = None,
        kg_dim: int | None = None,
        kg_init: str = "xavier_uniform",
        reg_form: str = "mmrec",
        backend: str = "auto",
        feature_dim: int | None = None,
        prune_ratio: float = 0.0,
        modal_bpr_weight: float = 0.0,
        align_weight: float = 0.0,
        align_temperature: float = 0.1,
        align_batch: int = 1024,
        user_graph_k: int = 0,
        user_side: bool = False,
    ) -> None:
        super().__init__(inter, reg_weight, reg_form)
        if kg is None:
            raise ValueError("EMMKGR: needs the E-MMKG (kg=None); build it with build_emmkg.")
        kg_dim = dim if kg_dim is None else kg_dim
        for name, value, allowed in (
            ("fusion", fusion, FUSIONS),
            ("item_graph", item_graph, ITEM_GRAPHS),
            ("kg_init", kg_init, KG_INITS),
            ("item_graph_missing", item_graph_missing, ("mean", "skip")),
        ):
            if value not in allowed:
                raise ValueError(f"EMMKGR: {name} '{value}' is not one of {allowed}.")
        if kg_dim < dim:
            raise ValueError(
                f"EMMKGR: kg_dim ({kg_dim}) must be at least dim ({dim}); the fusion adds the first "
                "dim entries of the KG item vectors."
            )
        self.dim, self.kg_dim = dim, kg_dim
        self.fusion, self.kg_init = fusion, kg_init
        self.cf = LightGCN(
            inter,
            dim=dim,
            num_layers=num_layers,
            reg_weight=reg_weight,
            backend=backend,
            reg_form=reg_form,
            prune_ratio=prune_ratio,
        )
        bound = None
        if kg_init == "rotate":  # the RotatE reference code's embedding range (its gamma: 12)
            bound = (ROTATE_INIT_GAMMA + 2.0) / (kg_dim // 2)
        self.encoder = EMMKGEncoder(
            kg,
            dim=kg_dim,
            num_layers=kg_layers,
            projection=projection,
            proj_norm=proj_norm,
            train_features=train_features,
            add_self_loops=add_self_loops,
            backend=backend,
            feature_dim=feature_dim,
            item_init_bound=bound,
        )
        if modal_bpr_weight < 0 or (modal_bpr_weight and fusion == "authors"):
            raise ValueError(
                f"EMMKGR: modal_bpr_weight={modal_bpr_weight}: give a weight >= 0 (0: none), with a "
                "fusion that propagates H^MM in training ('sum' or 'item_graph', not 'authors')."
            )
        self.modal_bpr_weight = float(modal_bpr_weight)
        if align_weight < 0 or align_temperature <= 0 or align_batch < 1:
            raise ValueError(
                f"EMMKGR: align_weight={align_weight}, align_temperature={align_temperature}, "
                f"align_batch={align_batch}: give a weight >= 0 (0: none), a temperature > 0 and a "
                "batch >= 1."
            )
        self.align_weight, self.align_temperature = float(align_weight), float(align_temperature)
        self.align_batch = int(align_batch)
        if user_graph_k < 0:
            raise ValueError(f"EMMKGR: user_graph_k={user_graph_k}: give k >= 1, or 0 for no user graph.")
        self.user_graph_k = int(user_graph_k)
        self.user_graph = None
        adj = None
        if user_side:  # the mean over each user's distinct training items
            user, item = inter.distinct_pairs()
            deg = torch.bincount(user, minlength=self.n_users).float()
            size = (self.n_users, self.n_items)
            index = torch.stack([user, item])
            adj = torch.sparse_coo_tensor(
                index, 1.0 / deg[user], size, is_coalesced=True, check_invariants=False
            )
        # a buffer, so that it moves with the model; rebuilt, not saved
        self.register_buffer("user_side_adj", adj, persistent=False)
        if self.user_graph_k:
            edge_index, beta = user_cooccurrence_graph(inter, self.user_graph_k)
            # messages flow from the neighbour to the user; rebuilt, not saved (a pair of sparse
            # tensors, as DualGNN's: on the CPU)
            self.user_graph = sparse_adjacency(edge_index, beta, self.n_users, backend)
        if self.modal_bpr_weight or self.align_weight:
            # item -> its node of each modality (global KG row), -1 if none; each block's first row
            rows, self.modal_starts = [], []
            for m in self.encoder.modalities:
                start = self.encoder.view.offsets[m]
                lookup = torch.full((self.n_items,), -1, dtype=torch.long)
                lookup[kg[m].item] = torch.arange(kg[m].num_nodes) + start
                rows.append(lookup)
                self.modal_starts.append(start)
            self.register_buffer("modal_rows", torch.stack(rows), persistent=False)
        self.relations = RelationPhases(len(self.encoder.view.relations), kg_dim)
        self.kg_loss_fn = KGLoss(**{"num_relations": len(self.encoder.view.relations), **(kg_loss or {})})
        self.kg_norm = kg_norm
        self.kg_reg_weight = kg_reg_weight
        self.item_graph_layers = item_graph_layers if fusion != "sum" else 0
        if self.item_graph_layers:
            if item_graph == "knn":
                features = dense_modal_features(kg, self.n_items, "EMMKGR")
                weights = resolve_modal_weights(list(features), item_graph_weights, "EMMKGR")
                present = modal_presence(kg, self.n_items, "EMMKGR") if item_graph_missing == "skip" else None
                ei, ew = mixed_knn_item_graph(features, item_graph_k, weights, present=present)
            else:
                ei, ew = item_item_graph(kg)
            self.register_buffer("item_graph_index", ei, persistent=False)
            self.register_buffer("item_graph_weight", ew, persistent=False)
            self.item_conv = LightGCNConv(normalize=False, cached=True, backend=backend)

    def on_epoch_start(self) -> None:
        self.cf.on_epoch_start()

    def item_neighbors(self) -> tuple[Tensor, Tensor] | None:
        """The item-item graph of the ``item_graph``/``authors`` fusions (``None`` with ``sum``)."""
        if not self.item_graph_layers:
            return None
        return self.item_graph_index, self.item_graph_weight

    def reset_parameters(self) -> None:
        """Re-draws every part (each part draws its own at construction; trainable feature tables
        keep the features they were initialised from)."""
        self.cf.reset_parameters()
        self.encoder.reset_parameters()
        self.relations.reset_parameters()
        self.kg_loss_fn.reset_parameters()
        if self.item_graph_layers:
            self.item_conv.reset_parameters()

    def kg_item_rows(self) -> Tensor:
        r""":math:`[\mathbf{E}^{i}_{kg}]_{:d}`, the raw KG item table's first ``dim`` columns."""
        return self.encoder.item_emb.weight[:, : self.dim]

    def embed(self) -> Embeddings:
        user, item_in = self.cf.propagate()
        if self.user_graph is not None:
            user = user + spmm_with_transpose(*self.user_graph, user)
        extra = {"H_in_item": item_in}
        if self.fusion != "authors" or not self.training:
            extra["H_mm"] = self.encoder.propagate()
        if self.fusion == "authors":
            side = self.kg_item_rows()
        else:
            side = extra["H_mm"][: self.n_items, : self.dim]
        if self.item_graph_layers:
            h = last_layer(
                self.item_conv,
                item_in + side,
                self.item_graph_index,
                self.item_graph_layers,
                self.item_graph_weight,
            )
        else:
            h = side
        item = item_in + h
        if self.user_side_adj is not None:
            user = user + torch.sparse.mm(self.user_side_adj, h)
        return Embeddings(user, item, extra)

    def embed_kg(self) -> Embeddings:
        return Embeddings(None, None, {"H_mm": self.encoder.propagate()})

    def rec_losses(self, emb: Embeddings, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        """The default terms (``bpr``, ``reg``) and, with ``modal_bpr_weight``, ``modal_bpr``."""
        losses = super().rec_losses(emb, users, pos, neg)
        if self.modal_bpr_weight:
            h_mm, u = emb.extra["H_mm"], emb.user[users]

            def rows(items: Tensor, lookup: Tensor) -> Tensor:
                r = lookup[items]
                return h_mm[r.clamp(min=0), : self.dim] * (r >= 0).unsqueeze(-1)

            modal = sum(self.pair_loss(u, rows(pos, lk), rows(neg, lk)) for lk in self.modal_rows)
            losses["modal_bpr"] = self.modal_bpr_weight * modal
        return losses

    def ego_embeddings(self, users: Tensor, pos: Tensor, neg: Tensor) -> list[Tensor]:
        # looked up through the table (not kg_item_rows()[ids]) so that a sparse table gets sparse rows
        rows = self.encoder.item_emb
        return self.cf.ego_embeddings(users, pos, neg) + [
            rows(pos)[..., : self.dim],
            rows(neg)[..., : self.dim],
        ]

    def _h_mm(self, emb: Embeddings) -> Tensor:
        h_mm = emb.extra.get("H_mm")
        # the "authors" fusion does not propagate the KG for recommendation
        return self.encoder.propagate() if h_mm is None else h_mm

    def kg_distance(self, emb: Embeddings, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        h_mm = self._h_mm(emb)
        return rotate_distance(h_mm[head], self.relations(rel), h_mm[tail], self.kg_norm)

    def kg_losses(self, emb: Embeddings, batch: KGBatch) -> dict[str, Tensor]:
        h_mm = self._h_mm(emb)
        emb = Embeddings(emb.user, emb.item, {**emb.extra, "H_mm": h_mm})
        pos = self.kg_distance(emb, batch.head, batch.rel, batch.tail)
        neg = self.kg_distance(emb, batch.neg_head, batch.rel.unsqueeze(1), batch.neg_tail)
        losses = {"kg": self.kg_loss_fn(pos, neg, batch.rel)}
        if self.kg_reg_weight:
            reg = embedding_reg([h_mm[batch.head], h_mm[batch.tail]], batch.head.size(0), self.reg_form)
            losses["kg_reg"] = self.kg_reg_weight * reg
        if self.align_weight:
            losses["align"] = self.align_weight * self.align_loss(h_mm, emb.extra.get("kg_ids"))
        return losses

    def align_loss(self, h_mm: Tensor, kg_ids: Tensor | None = None) -> Tensor:
        """The search-alignment term (``align_weight``) over up to ``align_batch`` items of each
        modality: drawn at random when ``h_mm`` holds every KG node, or, when it holds only the
        rows of the global KG ids ``kg_ids`` (sampled training), the items among them."""
        if kg_ids is None:
            items = item_rows = torch.randperm(self.n_items, device=h_mm.device)
        else:
            item_rows = (kg_ids < self.n_items).nonzero().view(-1)
            items = kg_ids[item_rows]
        terms = []
        for i, (lookup, start) in enumerate(zip(self.modal_rows, self.modal_starts, strict=True)):
            node = lookup[items]
            has = (node >= 0).nonzero().view(-1)[: self.align_batch]
            if has.numel() < 2:  # no contrast among fewer than two
                continue
            z = self.encoder.project(i, self.encoder.features(i)[node[has] - start], reduced=True)
            logits = F.normalize(z, dim=-1) @ F.normalize(h_mm[item_rows[has]], dim=-1).T
            target = torch.arange(has.numel(), device=logits.device)
            terms.append(F.cross_entropy(logits / self.align_temperature, target))
        return torch.stack(terms).mean() if terms else h_mm.sum() * 0.0

    def export_embeddings(self, emb: Embeddings) -> dict[str, Tensor]:
        out = super().export_embeddings(emb)
        h_mm = emb.extra["H_mm"]
        out[MM_ITEM] = h_mm[: self.n_items]
        for m, h in self.encoder.split(h_mm).items():
            if m != "item":
                out[f"H_mm_{m}"] = h
        return out


def item_item_graph(kg: HeteroData) -> tuple[Tensor, Tensor]:
    r"""The item-item graph that the E-MMKG's ``similar_<m>`` edges induce: per modality, edges
    between the items of similar nodes, normalised :math:`D^{-1/2} A D^{-1/2}`; then the mean over
    modalities. Returns ``(edge_index, edge_weight)`` over item ids."""
    n = int(kg["item"].num_nodes)
    parts, weights = [], []
    sims = [(s, d) for s, rel, d in kg.edge_types if s == d != "item" and rel == f"similar_{s}"]
    for m, _ in sims:
        items = kg[m].item
        ei = items[kg[m, f"similar_{m}", m].edge_index]
        ei = torch.unique(ei[:, ei[0] != ei[1]], dim=1)
        ei, ew = lightgcn_norm(ei, n)
        parts.append(ei)
        weights.append(ew / len(sims))
    if not parts:
        raise ValueError("item_item_graph: the E-MMKG has no modal-modal edges to induce it from.")
    adj = torch.sparse_coo_tensor(torch.cat(parts, 1), torch.cat(weights), (n, n), check_invariants=False)
    adj = adj.coalesce()
    return adj.indices(), adj.values()

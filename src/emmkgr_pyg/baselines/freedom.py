r"""FREEDOM (Zhou & Shen, ACM MM 2023): a frozen item-item graph and a denoised user-item graph."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.interaction import InteractionGraph
from ..graph.knn import KNNBuilder
from ..nn.blocks import IDEmbedding, PrunedInteractions, id_layer_mean, last_layer
from ..nn.conv import LightGCNConv
from ..nn.recommender import Embeddings, Recommender
from .common import (
    ModalFeatures,
    dense_modal_features,
    mixed_knn_item_graph,
    modal_presence,
    resolve_modal_weights,
)


class FREEDOM(Recommender):
    r"""FREEDOM, `"A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
    Recommendation" <https://arxiv.org/abs/2211.06924>`_ (Zhou & Shen, ACM MM 2023), as in MMRec.

    An item-item graph :math:`\mathbf{S}` is built once from the raw modality features and frozen;
    the user-item graph is pruned afresh every epoch, keeping edge :math:`(u, i)` with probability
    :math:`\propto 1/\sqrt{d_u d_i}` (:func:`degree_sensitive_prune`); evaluation uses the full graph:

    .. math::
        \mathbf{S} = \sum_m w_m\, \mathbf{D}_m^{-1/2} \mathbf{S}_m \mathbf{D}_m^{-1/2}, \quad
        \mathbf{h}_i = (\mathbf{S}^{L_{mm}} \mathbf{E}^{i})_i, \quad
        [\bar{\mathbf{E}}^u; \bar{\mathbf{E}}^i] = \frac{1}{L+1} \sum_{l=0}^{L}
        \tilde{\mathbf{A}}_{\rho}^{l} [\mathbf{E}^u; \mathbf{E}^i]

    with :math:`\mathbf{S}_m` the binary top-``knn_k`` cosine graph of modality :math:`m` (each item
    lists itself, as a dense ``topk`` does) and item representation :math:`\bar{\mathbf{e}}^i +
    \mathbf{h}_i`. Loss: BPR on these, plus ``reg_weight`` times a BPR per modality that scores the
    user against the projected features :math:`\mathbf{W}^m \mathbf{x}^m_i` (FREEDOM's
    ``reg_weight`` weighs these terms; there is no L2 term).

    **More than two modalities:** :math:`\mathbf{S}` is the weighted sum of every modality's
    normalised kNN graph with weights from ``modal_weights`` (:func:`resolve_modal_weights`: the
    named ones as given, the others share the rest equally; ``None`` = uniform). The reference's
    ``mm_image_weight = 0.1`` is ``{"image": 0.1}``; every modality gets its own BPR term.

    **Departures from MMRec's FREEDOM:** items lacking a modality get the modality's mean feature
    (MMRec's rule, applied here inside the model); the kNN graph comes from faiss
    (:class:`KNNBuilder`) instead of a dense :math:`N \times N` similarity, and an item always lists
    itself first (a dense ``topk`` may drop it in favour of exact duplicates); the edge pruning runs
    on the first :meth:`embed` after each :meth:`train` call (the trainer calls ``model.train()``
    once per epoch, MMRec calls ``pre_epoch_processing``), and keeps at least one edge.

    Args:
        inter: the training interaction graph.
        kg: the E-MMKG (only its modality features ``kg[m].x``, ``kg[m].item`` are read).
        dim: id embedding size (default ``64``).
        feat_embed_dim: size of the projected modality features (default ``64``; must equal
            ``dim``, they are scored against user embeddings).
        knn_k: neighbours per item in :math:`\mathbf{S}_m`, itself included (default ``10``).
        missing: items lacking a modality in :math:`\mathbf{S}_m`: ``"mean"`` (MMRec: the mean row,
            so all of them are one another's neighbours) or ``"skip"`` (the kNN graph among the
            items that have it; :func:`~emmkgr_pyg.graph.item_graph.mixed_knn_item_graph`).
        modal_weights: :math:`w_m` by modality name (default ``None``: uniform).
        n_mm_layers: :math:`L_{mm}`, propagations over :math:`\mathbf{S}` (default ``1``).
        n_ui_layers: :math:`L`, LightGCN layers on the user-item graph (default ``2``).
        prune_ratio: :math:`\rho`, fraction of user-item edges pruned per epoch (default ``0.8``;
            MMRec searches ``{0.8, 0.9}``; ``0`` disables pruning).
        reg_weight: weight of the per-modality BPR terms (default ``1e-4``; MMRec searches
            ``{0, 1e-5, 1e-4, 1e-3}``).
        train_features: train the feature tables, as MMRec does (default ``True``).
        knn: the faiss kNN builder (default: exact).
        backend: sparse backend of :class:`LightGCNConv` (default ``"auto"``).

    Shapes:
        - :meth:`embed`: ``user`` ``[U, dim]``, ``item`` ``[N, dim]``, ``extra["H_item_graph"]``
          :math:`\mathbf{S}^{L_{mm}} \mathbf{E}^{i}` ``[N, dim]``
        - :attr:`mm_edge_index` ``[2, M N k]``, :attr:`mm_edge_weight` ``[M N k]`` (:math:`M`
          modalities)
    """

    needs_features = True

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData | None,
        dim: int = 64,
        feat_embed_dim: int = 64,
        knn_k: int = 10,
        missing: str = "mean",
        modal_weights: Mapping[str, float] | None = None,
        n_mm_layers: int = 1,
        n_ui_layers: int = 2,
        prune_ratio: float = 0.8,
        reg_weight: float = 1e-4,
        train_features: bool = True,
        knn: KNNBuilder | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(inter, reg_weight)
        if feat_embed_dim != dim:
            raise ValueError(
                f"FREEDOM: feat_embed_dim ({feat_embed_dim}) must equal dim ({dim}); projected "
                "features are scored against user embeddings."
            )
        if knn_k < 1:
            raise ValueError(f"FREEDOM: knn_k must be at least 1, got {knn_k}.")
        if not 0.0 <= prune_ratio < 1.0:
            raise ValueError(f"FREEDOM: prune_ratio must be in [0, 1), got {prune_ratio}.")
        if missing not in ("mean", "skip"):
            raise ValueError(f"FREEDOM: missing must be 'mean' or 'skip', got '{missing}'.")
        self.dim, self.knn_k, self.missing = dim, knn_k, missing
        self.present = modal_presence(kg, self.n_items, "FREEDOM") if missing == "skip" else None
        self.n_mm_layers, self.n_ui_layers = n_mm_layers, n_ui_layers
        self.prune_ratio = prune_ratio
        features = dense_modal_features(kg, self.n_items, "FREEDOM")
        self.modal_weights = resolve_modal_weights(list(features), modal_weights, "FREEDOM")
        self.features = ModalFeatures(features, feat_embed_dim, train_features)
        self.ids = IDEmbedding(self.n_users, self.n_items, dim)

        mm_index, mm_weight = self.frozen_item_graph(features, knn or KNNBuilder(progress=False))
        self.register_buffer("mm_edge_index", mm_index, persistent=False)
        self.register_buffer("mm_edge_weight", mm_weight, persistent=False)
        self.register_buffer("edge_index", inter.edge_index(), persistent=False)
        self.pruned = PrunedInteractions(inter, prune_ratio, backend)
        self.mm_conv = LightGCNConv(normalize=False, cached=True, backend=backend)
        self.ui_conv = LightGCNConv(cached=True, backend=backend)
        self.reset_parameters()

    @property
    def pruned_edge_index(self) -> Tensor | None:
        """The epoch's pruned user-item graph (``None`` before its first training pass)."""
        return self.pruned.edge_index

    def reset_parameters(self) -> None:
        self.ids.reset_parameters()
        self.features.reset_parameters()
        for conv in (self.mm_conv, self.ui_conv):
            conv.reset_parameters()
        self.pruned.reset()

    def frozen_item_graph(self, features: Mapping[str, Tensor], knn: KNNBuilder) -> tuple[Tensor, Tensor]:
        r""":math:`\mathbf{S}` as ``(edge_index, edge_weight)``, edges neighbour -> item
        (:func:`~emmkgr_pyg.graph.item_graph.mixed_knn_item_graph`)."""
        return mixed_knn_item_graph(features, self.knn_k, self.modal_weights, knn, self.present)

    def on_epoch_start(self) -> None:
        """Every epoch trains on a freshly pruned user-item graph."""
        self.pruned.reset()

    def item_neighbors(self) -> tuple[Tensor, Tensor]:
        r""":math:`\mathbf{S}`, the frozen kNN item graph."""
        return self.mm_edge_index, self.mm_edge_weight

    def item_graph_embeddings(self) -> Tensor:
        r""":math:`\mathbf{S}^{L_{mm}} \mathbf{E}^{i}`."""
        return last_layer(
            self.mm_conv, self.ids.item.weight, self.mm_edge_index, self.n_mm_layers, self.mm_edge_weight
        )

    def embed(self) -> Embeddings:
        if self.training:
            conv, edge_index = self.pruned.graph()
        else:
            conv, edge_index = self.ui_conv, self.edge_index
        user, item = id_layer_mean(
            conv, self.ids.user.weight, self.ids.item.weight, edge_index, self.n_ui_layers
        )
        h = self.item_graph_embeddings()
        return Embeddings(user, item + h, {"H_item_graph": h})

    def rec_losses(self, emb: Embeddings, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        """``bpr`` on the fused embeddings and ``modal_bpr`` (``reg_weight`` times the sum over
        modalities of BPR against the projected features)."""
        u = emb.user[users]
        losses = {self.rec_loss: self.pair_loss(u, emb.item[pos], emb.item[neg])}
        if self.reg_weight:
            feats = self.features
            modal = sum(self.pair_loss(u, feats(m, pos), feats(m, neg)) for m in feats.names)
            losses["modal_bpr"] = self.reg_weight * modal
        return losses

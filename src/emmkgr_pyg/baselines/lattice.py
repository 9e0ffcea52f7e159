r"""LATTICE (Zhang et al., ACM MM 2021): an item-item graph learned from projected modality features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.interaction import InteractionGraph
from ..graph.knn import KNNBuilder
from ..nn.blocks import IDEmbedding, id_layer_mean, last_layer
from ..nn.conv import LightGCNConv
from ..nn.recommender import Embeddings, Recommender
from .common import ModalFeatures, dense_modal_features, knn_item_graph, knn_normalize


def random_walk_self_loop_norm(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    r"""LATTICE's user-item operator :math:`\mathbf{D}^{-1}(\mathbf{A} + \mathbf{I})` as edges:
    every edge ``j -> i`` and a self-loop per node, weighted :math:`1 / (d_i + 1)`."""
    loops = torch.arange(num_nodes).repeat(2, 1)
    full = torch.cat([edge_index, loops], dim=1)
    deg = torch.bincount(full[1], minlength=num_nodes).float()
    return full, deg.reciprocal()[full[1]]


class LATTICE(Recommender):
    r"""LATTICE, `"Mining Latent Structures for Multimedia Recommendation"
    <https://arxiv.org/abs/2104.09036>`_ (Zhang et al., ACM MM 2021), as in MMRec (LightGCN as the
    collaborative model).

    Per modality :math:`m`, an initial graph :math:`\tilde{\mathbf{S}}_m` (top-``knn_k`` cosine
    neighbours of the raw features, weighted by similarity, normalised; built once) and a learned
    graph :math:`\hat{\mathbf{S}}_m` (the same on the projected features
    :math:`\mathbf{f}^m = \mathbf{W}^m \mathbf{x}^m`, which train), mixed with learned modality
    weights :math:`\boldsymbol{\alpha} = \mathrm{softmax}(\mathbf{a})`:

    .. math::
        \mathbf{S} = (1 - \lambda)\, \mathbf{D}^{-1/2} \Big(\sum_m \alpha_m \hat{\mathbf{S}}_m\Big)
        \mathbf{D}^{-1/2} + \lambda \sum_m \alpha_m \mathbf{D}_m^{-1/2} \tilde{\mathbf{S}}_m
        \mathbf{D}_m^{-1/2}, \qquad
        \hat{S}_{m,ij} = \cos(\mathbf{f}^m_i, \mathbf{f}^m_j)\,[j \in \mathrm{top}k(i)]

    Items are :math:`\bar{\mathbf{e}}^i + \ell_2\text{-normalise}(\mathbf{S}^{L_{ii}}
    \mathbf{E}^i)_i`, with :math:`\bar{\mathbf{E}}` the layer mean of LightGCN over
    :math:`\mathbf{D}^{-1}(\mathbf{A} + \mathbf{I})` (MMRec's LATTICE operator). Loss: BPR plus
    ``reg_weight`` times the squared norm of the batch's final embeddings over :math:`2B`.
    :math:`\lambda` weighs the *initial* graph, as in the reference code (``lambda_coeff = 0.9``:
    mostly the initial structure, a skip connection).

    **More than two modalities:** :math:`\boldsymbol{\alpha}` is a learned softmax over all the
    dataset's modalities (initialised uniform), applied to the learned and initial graphs alike.

    **Departures from MMRec's LATTICE:** no dense :math:`N \times N` similarity. The learned
    graph's neighbours are chosen with faiss on the current projected features (a
    non-differentiable selection, as ``topk`` is), once per training epoch (on the first
    :meth:`embed` after :meth:`train`) and on every :meth:`embed` in evaluation mode; the edge
    weights of those :math:`N k` pairs (cosines, modality weights, normalisation) are computed
    differentiably on every :meth:`embed`, so every batch trains the projections (MMRec rebuilds
    the graph on an epoch's first batch and detaches it for the others). An item always lists
    itself among its ``knn_k`` neighbours. Items lacking a modality get the modality's mean feature
    (MMRec's rule, applied here). MMRec's per-epoch learning-rate decay (0.96 every 50 epochs) is
    not applied (the trainer has no scheduler).

    Args:
        inter: the training interaction graph.
        kg: the E-MMKG (only its modality features ``kg[m].x``, ``kg[m].item`` are read).
        dim: id embedding size (default ``64``).
        feat_embed_dim: size of the projected features the learned graph is built from
            (default ``64``).
        knn_k: neighbours per item, itself included (default ``10``).
        lambda_coeff: :math:`\lambda`, weight of the initial graph (default ``0.9``).
        n_layers: :math:`L_{ii}`, propagations over :math:`\mathbf{S}` (default ``1``).
        n_ui_layers: LightGCN layers on the user-item graph (default ``2``).
        reg_weight: L2 weight on the batch's final embeddings (default ``1e-4``; MMRec searches
            ``{0, 1e-5, 1e-4, 1e-3}``).
        train_features: train the feature tables, as MMRec does (default ``True``).
        knn: the faiss kNN builder (default: exact).
        backend: sparse backend of :class:`LightGCNConv` (default ``"auto"``).

    Shapes:
        - :meth:`embed`: ``user`` ``[U, dim]``, ``item`` ``[N, dim]``, ``extra["H_item_graph"]``
          :math:`\mathbf{S}^{L_{ii}} \mathbf{E}^{i}` ``[N, dim]``
        - :meth:`item_graph`: ``edge_index`` ``[2, 2 M N k]``, ``edge_weight`` ``[2 M N k]``
          (learned and initial edges of :math:`M` modalities)
    """

    needs_features = True

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData | None,
        dim: int = 64,
        feat_embed_dim: int = 64,
        knn_k: int = 10,
        lambda_coeff: float = 0.9,
        n_layers: int = 1,
        n_ui_layers: int = 2,
        reg_weight: float = 1e-4,
        train_features: bool = True,
        knn: KNNBuilder | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(inter, reg_weight)
        if knn_k < 1:
            raise ValueError(f"LATTICE: knn_k must be at least 1, got {knn_k}.")
        if not 0.0 <= lambda_coeff <= 1.0:
            raise ValueError(f"LATTICE: lambda_coeff must be in [0, 1], got {lambda_coeff}.")
        self.dim, self.knn_k, self.lambda_coeff = dim, knn_k, lambda_coeff
        self.n_layers, self.n_ui_layers = n_layers, n_ui_layers
        self.knn = knn or KNNBuilder(progress=False)
        features = dense_modal_features(kg, self.n_items, "LATTICE")
        self.modalities = list(features)
        self.features = ModalFeatures(features, feat_embed_dim, train_features)
        self.modal_weight = torch.nn.Parameter(torch.zeros(len(self.modalities)))
        self.ids = IDEmbedding(self.n_users, self.n_items, dim)

        init_index, init_weight, init_modality = [], [], []
        for j, x in enumerate(features.values()):
            ei, sim = knn_item_graph(x, knn_k, self.knn)
            init_index.append(ei)
            init_weight.append(knn_normalize(ei, sim, self.n_items))
            init_modality.append(torch.full((ei.size(1),), j))
        self.register_buffer("init_edge_index", torch.cat(init_index, 1), persistent=False)
        self.register_buffer("init_edge_weight", torch.cat(init_weight), persistent=False)
        self.register_buffer("init_modality", torch.cat(init_modality), persistent=False)
        ui_index, ui_weight = random_walk_self_loop_norm(inter.edge_index(), inter.num_nodes)
        self.register_buffer("ui_edge_index", ui_index, persistent=False)
        self.register_buffer("ui_edge_weight", ui_weight, persistent=False)
        self.learned_edge_index: list[Tensor] | None = None
        self.ui_conv = LightGCNConv(normalize=False, cached=True, backend=backend)
        self.item_conv = LightGCNConv(normalize=False, backend=backend)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.ids.reset_parameters()
        torch.nn.init.zeros_(self.modal_weight)
        self.features.reset_parameters()
        self.ui_conv.reset_parameters()
        self.item_conv.reset_parameters()
        self.learned_edge_index = None

    def on_epoch_start(self) -> None:
        """Every epoch selects the learned graph's neighbours anew (evaluation always does)."""
        self.learned_edge_index = None

    @torch.no_grad()
    def select_learned_neighbors(self) -> list[Tensor]:
        r"""The learned graph's edges per modality (top-``knn_k`` of the current
        :math:`\mathbf{f}^m`, by faiss): ``[edge_index [2, N k] for each modality]``."""
        self.learned_edge_index = [
            knn_item_graph(self.features(m), self.knn_k, self.knn)[0] for m in self.modalities
        ]
        return self.learned_edge_index

    def item_graph(self) -> tuple[Tensor, Tensor]:
        r""":math:`\mathbf{S}` as ``(edge_index, edge_weight)`` (edges neighbour -> item; an edge
        may repeat, repeats add up); the weights are differentiable in :math:`\mathbf{W}^m`,
        the feature tables and :math:`\mathbf{a}`."""
        if self.learned_edge_index is None:
            self.select_learned_neighbors()
        alpha = torch.softmax(self.modal_weight, 0)
        learned_w = []
        for j, (m, ei) in enumerate(zip(self.modalities, self.learned_edge_index, strict=True)):
            f = F.normalize(self.features(m), dim=1)
            learned_w.append(alpha[j] * (f[ei[0]] * f[ei[1]]).sum(-1))
        learned_index = torch.cat(self.learned_edge_index, 1)
        learned = knn_normalize(learned_index, torch.cat(learned_w), self.n_items)
        initial = alpha[self.init_modality] * self.init_edge_weight
        edge_index = torch.cat([learned_index, self.init_edge_index], 1)
        edge_weight = torch.cat([(1.0 - self.lambda_coeff) * learned, self.lambda_coeff * initial])
        return edge_index, edge_weight

    def item_graph_embeddings(self) -> Tensor:
        r""":math:`\mathbf{S}^{L_{ii}} \mathbf{E}^i` (before the normalisation)."""
        if not self.training:
            self.select_learned_neighbors()
        edge_index, edge_weight = self.item_graph()
        return last_layer(self.item_conv, self.ids.item.weight, edge_index, self.n_layers, edge_weight)

    def embed(self) -> Embeddings:
        user, item = id_layer_mean(
            self.ui_conv,
            self.ids.user.weight,
            self.ids.item.weight,
            self.ui_edge_index,
            self.n_ui_layers,
            self.ui_edge_weight,
        )
        h = self.item_graph_embeddings()
        return Embeddings(user, item + F.normalize(h, dim=1), {"H_item_graph": h})

    def rec_losses(self, emb: Embeddings, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        """``bpr`` and ``reg`` (``reg_weight`` times the squared norm of the batch's final user,
        positive and negative embeddings over 2B, as MMRec's LATTICE)."""
        u, p, n = emb.user[users], emb.item[pos], emb.item[neg]
        losses = {self.rec_loss: self.pair_loss(u, p, n)}
        if self.reg_weight:
            sq = u.pow(2).sum() + p.pow(2).sum() + n.pow(2).sum()
            losses["reg"] = self.reg_weight * 0.5 * sq / users.size(0)
        return losses

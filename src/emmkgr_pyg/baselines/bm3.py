r"""BM3 (Zhou et al., WWW 2023): bootstrapped latent targets, no negative sampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.interaction import InteractionGraph
from ..nn.blocks import IDEmbedding, id_layer_mean
from ..nn.conv import LightGCNConv
from ..nn.recommender import Embeddings, Recommender
from .common import ModalFeatures, dense_modal_features


def bootstrap_target(online: Tensor, dropout: float) -> Tensor:
    r"""BM3's target view of an online representation: :math:`\mathrm{dropout}(\mathrm{sg}(\mathbf{h}))`.

    The stop-gradient comes first, so no gradient reaches the online network through the target;
    dropout is always on (it is the augmentation, not a regulariser).
    """
    return F.dropout(online.detach(), dropout, training=True)


def cosine_loss(online: Tensor, target: Tensor) -> Tensor:
    r""":math:`1 - \frac{1}{B}\sum_b \cos(\mathbf{o}_b, \mathbf{t}_b)`."""
    return 1.0 - F.cosine_similarity(online, target, dim=-1).mean()


class BM3(Recommender):
    r"""BM3, `"Bootstrap Latent Representations for Multi-modal Recommendation"
    <https://arxiv.org/abs/2207.05969>`_ (Zhou et al., WWW 2023), as in MMRec.

    The online network is LightGCN plus the item id embedding, and a linear projection of each
    modality; a shared predictor :math:`p` maps online views onto targets, which are dropped-out,
    stop-gradient copies (:func:`bootstrap_target`):

    .. math::
        [\mathbf{H}^u; \mathbf{H}^i] = \frac{1}{L+1}\sum_{l=0}^{L} \tilde{\mathbf{A}}^l
        [\mathbf{E}^u; \mathbf{E}^i] + [\mathbf{0}; \mathbf{E}^i], \quad
        \hat{y}_{ui} = p(\mathbf{h}_u) \cdot p(\mathbf{h}_i)

        \mathcal{L} = \underbrace{c(p(\mathbf{h}_u), \bar{\mathbf{h}}_i) + c(p(\mathbf{h}_i),
        \bar{\mathbf{h}}_u)}_{\texttt{rec}}
        + \lambda_{cl} \sum_m \Big[\underbrace{c(p(\mathbf{f}^m_i), \bar{\mathbf{h}}_i)}_{\texttt{align}}
        + \underbrace{c(p(\mathbf{f}^m_i), \bar{\mathbf{f}}^m_i)}_{\texttt{mask}}\Big]
        + \lambda_{reg} \frac{\lVert\mathbf{H}^u\rVert_F + \lVert\mathbf{H}^i\rVert_F}{N}

    over a batch of positive pairs :math:`(u, i)`, with :math:`c(\mathbf{o}, \mathbf{t}) = 1 -
    \cos(\mathbf{o}, \mathbf{t})` averaged (:func:`cosine_loss`), :math:`\bar{\cdot}` a target,
    :math:`\mathbf{f}^m_i = \mathbf{W}^m \mathbf{x}^m_i` and :math:`N` the number of items. No
    negatives: :meth:`rec_losses` ignores ``neg``.

    **More than two modalities:** every modality adds its own ``align`` and ``mask`` terms (the
    sums above run over all of them), with one shared predictor, as the reference does for two.

    **Departures from MMRec's BM3:** items lacking a modality get the modality's mean feature
    (MMRec's rule, applied here); projections and targets are computed for the batch's rows only
    (dropout masks are drawn per batch row, so an item twice in a batch gets two masks, where
    MMRec draws one mask per item over the whole table).

    Args:
        inter: the training interaction graph.
        kg: the E-MMKG (only its modality features ``kg[m].x``, ``kg[m].item`` are read).
        dim: embedding size, also of the projected features (default ``64``).
        n_layers: :math:`L` (default ``1``; MMRec searches ``{1, 2}``).
        dropout: the target views' dropout (default ``0.5``; MMRec searches ``{0.3, 0.5}``).
        reg_weight: :math:`\lambda_{reg}` (default ``0.1``; MMRec searches ``{0.1, 0.01}``).
        cl_weight: :math:`\lambda_{cl}` (default ``2.0``).
        train_features: train the feature tables, as MMRec does (default ``True``).
        backend: sparse backend of :class:`LightGCNConv` (default ``"auto"``).

    Shapes:
        - :meth:`embed`: ``user`` :math:`p(\mathbf{H}^u)` ``[U, dim]``, ``item``
          :math:`p(\mathbf{H}^i)` ``[N, dim]``, ``extra["H_user"]`` ``[U, dim]``,
          ``extra["H_item"]`` ``[N, dim]``
    """

    needs_features = True

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData | None,
        dim: int = 64,
        n_layers: int = 1,
        dropout: float = 0.5,
        reg_weight: float = 0.1,
        cl_weight: float = 2.0,
        train_features: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__(inter, reg_weight)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"BM3: dropout must be in [0, 1), got {dropout}.")
        self.dim, self.n_layers = dim, n_layers
        self.dropout, self.cl_weight = dropout, cl_weight
        features = dense_modal_features(kg, self.n_items, "BM3")
        self.features = ModalFeatures(features, dim, train_features, init="xavier_normal")
        self.ids = IDEmbedding(self.n_users, self.n_items, dim)
        self.predictor = torch.nn.Linear(dim, dim)
        self.register_buffer("edge_index", inter.edge_index(), persistent=False)
        self.conv = LightGCNConv(cached=True, backend=backend)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.ids.reset_parameters()
        self.predictor.reset_parameters()
        torch.nn.init.xavier_normal_(self.predictor.weight)
        self.features.reset_parameters()
        self.conv.reset_parameters()

    def online(self) -> tuple[Tensor, Tensor]:
        r"""The online representations :math:`(\mathbf{H}^u, \mathbf{H}^i)`."""
        user, item = id_layer_mean(
            self.conv, self.ids.user.weight, self.ids.item.weight, self.edge_index, self.n_layers
        )
        return user, item + self.ids.item.weight

    def embed(self) -> Embeddings:
        """``user``, ``item``: the predicted views scored at evaluation; ``extra``: the online
        representations ``H_user``, ``H_item``."""
        h_user, h_item = self.online()
        return Embeddings(
            self.predictor(h_user), self.predictor(h_item), {"H_user": h_user, "H_item": h_item}
        )

    def rec_losses(
        self, emb: Embeddings, users: Tensor, pos: Tensor, neg: Tensor | None = None
    ) -> dict[str, Tensor]:
        """BM3's losses on the batch's positive pairs ``(users, pos)``: ``rec``, ``align``,
        ``mask`` (the last two times ``cl_weight``) and ``reg``. ``neg`` is ignored."""
        h_user, h_item = emb.extra["H_user"], emb.extra["H_item"]
        u_target = bootstrap_target(h_user[users], self.dropout)
        i_target = bootstrap_target(h_item[pos], self.dropout)
        losses = {"rec": cosine_loss(emb.user[users], i_target) + cosine_loss(emb.item[pos], u_target)}
        align, mask = 0.0, 0.0
        for m in self.features.names:
            f = self.features(m, pos)
            f_online = self.predictor(f)
            align = align + cosine_loss(f_online, i_target)
            mask = mask + cosine_loss(f_online, bootstrap_target(f, self.dropout))
        losses["align"] = self.cl_weight * align
        losses["mask"] = self.cl_weight * mask
        if self.reg_weight:
            losses["reg"] = self.reg_weight * (h_user.norm() + h_item.norm()) / self.n_items
        return losses

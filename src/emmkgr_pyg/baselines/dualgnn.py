r"""DualGNN: "Dual Graph Neural Network for Multimedia Recommendation" (Wang et al., IEEE TMM 2023),
as the MMRec toolbox runs it.

The modality features come from the E-MMKG (``kg[m].x`` with ``kg[m].item``); the model uses every
modality node type the graph has. It needs no knowledge-graph loss. The user co-occurrence graph is
built from the training interactions with sparse products
(:func:`~emmkgr_pyg.graph.interaction.user_cooccurrence`; MMRec reads a precomputed file made
from a dense ``U x U`` matrix).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.interaction import USER_AGGR, InteractionGraph, user_cooccurrence_graph
from ..nn.blocks import FrozenFeatures, layer_sum
from ..nn.conv import LightGCNConv, sparse_adjacency, spmm_with_transpose
from ..nn.recommender import Embeddings, Recommender
from .common import dense_modal_features


class DualGNN(Recommender):
    r"""DualGNN (Wang et al., TMM 2023): a GCN per modality on the user-item graph, then a user
    co-occurrence graph that fuses each user's multimodal preference with its neighbours'.

    Per modality :math:`m`, learned user preferences :math:`P^m` and item features through an MLP,
    :math:`H^{m,(0)} = \mathrm{norm}([P^m;\ W_2\,\mathrm{LeakyReLU}(W_1 X^m)])`, are propagated
    on the interaction graph (:math:`\tilde A = D^{-1/2} A D^{-1/2}`, :class:`LightGCNConv`) and
    the layers summed. Users weigh the modalities with learned per-user weights, items add them,
    and a user adds its co-occurrence neighbours' fused preferences:

    .. math::
        H^m = \sum_{l=0}^{L} \tilde A^l H^{m,(0)}, \qquad
        u_u = \sum_m \omega_{u,m} H^m_u, \qquad i_i = \sum_m H^m_i,

        \hat u_u = u_u + \sum_{v \in \mathcal{N}_k(u)} \beta_{uv}\, u_v, \qquad
        \beta_{uv} = \operatorname{softmax}_{v \in \mathcal{N}_k(u)} C_{uv}

    with :math:`\mathcal{N}_k(u)` the ``k`` users with most common training items :math:`C_{uv}`
    (:func:`~emmkgr_pyg.graph.interaction.user_cooccurrence_graph`; ``user_aggr="mean"``:
    :math:`\beta_{uv} = 1/|\mathcal{N}_k(u)|`)
    and :math:`\hat y_{ui} = \hat u_u^\top i_i`. Loss: :math:`-\log_2 \sigma(\hat y_{ui} - \hat
    y_{uj})` (base 2, as MMRec) plus ``reg_weight`` times the mean squared preference of the
    batch's users per modality and the mean squared :math:`\omega`.

    More than two modalities: one preference table, MLP and GCN per modality; :math:`\omega_u` has
    one weight per modality (initialised near :math:`1/M` by a softmax, as in MMRec) and items sum
    all modalities.

    Departures from MMRec's ``dualgnn.py``: a user with fewer than ``k`` neighbours averages over
    those it has (MMRec pads the list with random repeats, redrawn every epoch); the user graph is
    computed here, once, from the training interactions; the never-used item weights, its dead
    edge-dropping code and the ``cat_mlp`` construction are left out; items lacking a modality take
    the modality's mean feature.

    Args:
        inter: the training interaction graph.
        kg: the E-MMKG (its modality node types carry ``x`` and ``item``).
        dim: embedding size (default ``64``).
        num_layers: GCN layers per modality (default ``2``).
        k: co-occurring users per user (default ``40``).
        user_aggr: ``"softmax"`` (over co-occurrence counts) or ``"mean"`` (default ``"softmax"``).
        reg_weight: L2 weight (default ``1e-3``; MMRec grid-searches 1e-1 .. 1e-5).
        backend: sparse backend of the GCN (default ``"auto"``).
    """

    needs_features = True

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData | None = None,
        dim: int = 64,
        num_layers: int = 2,
        k: int = 40,
        user_aggr: str = "softmax",
        reg_weight: float = 1e-3,
        backend: str = "auto",
    ) -> None:
        super().__init__(inter, reg_weight)
        if user_aggr not in USER_AGGR:
            raise ValueError(f"DualGNN: user_aggr '{user_aggr}' is not one of {USER_AGGR}.")
        features = dense_modal_features(kg, self.n_items, "DualGNN")
        self.modalities = list(features)
        self.dim, self.num_layers, self.k, self.user_aggr = dim, num_layers, k, user_aggr
        self.features = FrozenFeatures(features)
        self.preference = torch.nn.ParameterList(
            torch.nn.Parameter(torch.empty(self.n_users, dim)) for _ in self.modalities
        )
        self.mlp = torch.nn.ModuleList(
            torch.nn.Sequential(
                torch.nn.Linear(x.size(1), 4 * dim), torch.nn.LeakyReLU(), torch.nn.Linear(4 * dim, dim)
            )
            for x in features.values()
        )
        self.user_weight = torch.nn.Parameter(torch.empty(self.n_users, len(self.modalities)))
        self.register_buffer("edge_index", inter.edge_index(), persistent=False)
        self.conv = LightGCNConv(cached=True, backend=backend)
        self.user_graph, self.user_graph_t = self._user_graph(inter, backend)
        self.reset_parameters()

    def _user_graph(self, inter: InteractionGraph, backend: str) -> tuple[Tensor, Tensor]:
        """:math:`\\beta` as a sparse ``U x U`` matrix (row = user) and its transpose."""
        edge_index, beta = user_cooccurrence_graph(inter, self.k, self.user_aggr)
        return sparse_adjacency(edge_index, beta, self.n_users, backend)

    def reset_parameters(self) -> None:
        for pref in self.preference:
            torch.nn.init.xavier_normal_(pref)
        for mlp in self.mlp:
            for layer in mlp:
                if isinstance(layer, torch.nn.Linear):
                    layer.reset_parameters()
        # MMRec: a softmax over small normal weights, so each modality starts near 1 / M
        with torch.no_grad():
            std = math.sqrt(2.0 / (self.n_users + len(self.modalities)))
            self.user_weight.copy_(torch.softmax(torch.randn_like(self.user_weight) * std, -1))
        self.conv.reset_parameters()

    def modality_embeddings(self) -> list[Tensor]:
        """:math:`H^m` ``[U + N, dim]`` of every modality."""
        out = []
        for j, (pref, mlp) in enumerate(zip(self.preference, self.mlp)):
            h = F.normalize(torch.cat([pref, mlp(self.features(j))]))
            out.append(layer_sum(self.conv, h, self.edge_index, self.num_layers))
        return out

    def embed(self) -> Embeddings:
        reps = self.modality_embeddings()
        user = torch.einsum("um,mud->ud", self.user_weight, torch.stack([r[: self.n_users] for r in reps]))
        item = sum(r[self.n_users :] for r in reps)
        user = user + spmm_with_transpose(self.user_graph, self.user_graph_t, user)
        return Embeddings(user, item)

    def rec_losses(self, emb: Embeddings, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        pair = self.pair_loss(emb.user[users], emb.item[pos], emb.item[neg])
        losses = {self.rec_loss: pair / math.log(2.0)}
        if self.reg_weight:
            reg = sum(pref[users].pow(2).mean() for pref in self.preference) + self.user_weight.pow(2).mean()
            losses["reg"] = self.reg_weight * reg
        return losses

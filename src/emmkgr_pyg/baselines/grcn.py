r"""GRCN: "Graph-Refined Convolutional Network for Multimedia Recommendation with Implicit Feedback"
(Wei et al., ACM MM 2020), as the MMRec toolbox runs it.

The modality features come from the E-MMKG (``kg[m].x`` with ``kg[m].item``); the model uses every
modality node type the graph has. It needs no knowledge-graph loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.utils import softmax

from ..graph.interaction import InteractionGraph
from ..nn.blocks import FrozenFeatures, layer_sum
from ..nn.conv import LightGCNConv
from ..nn.edge_ops import EdgePattern, edge_dot, weighted_spmm
from ..nn.recommender import Embeddings, Recommender
from .common import dense_modal_features


class _ModalPrototypes(torch.nn.Module):
    """One modality of GRCN's refinement: user prototypes :math:`p^m_u` and the item projection."""

    def __init__(self, n_users: int, feat_dim: int, dim: int) -> None:
        super().__init__()
        self.preference = torch.nn.Parameter(torch.empty(n_users, dim))
        self.proj = torch.nn.Linear(feat_dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_normal_(self.preference)
        self.proj.reset_parameters()
        torch.nn.init.xavier_normal_(self.proj.weight)


class GRCN(Recommender):
    r"""GRCN (Wei et al., MM 2020): a graph-refining layer scores every user-item edge in each
    modality, prunes and weights the edges by the learned confidence, and a GCN over ID embeddings
    propagates on the refined graph.

    For each modality :math:`m`, user prototypes :math:`p^m_u` (learned) and item prototypes
    :math:`f^m_i = \mathrm{LeakyReLU}(W_m x^m_i + b_m)` (features :math:`x^m_i`), both
    L2-normalised. Routing (``num_routing`` times) moves a user's prototype towards its items:

    .. math::
        p^m_u \leftarrow \mathrm{norm}\Big(p^m_u + \sum_{i \in \mathcal{N}(u)}
        \operatorname{softmax}_{i \in \mathcal{N}(u)}(p^{m\top}_u f^m_i)\, f^m_i\Big)

    With :math:`h^m = [p^m; f^m]` over users and items, every directed edge :math:`s \to t` of the
    (symmetric) interaction graph gets the score
    :math:`\alpha^m_{s \to t} = \operatorname{softmax}_{s' \in \mathcal{N}(t)}(h^{m\top}_t h^m_{s'})`
    and the modality's content representation is
    :math:`c^m_t = h^m_t + \sum_{s \in \mathcal{N}(t)} \alpha^m_{s \to t} h^m_s`. The refined edge
    weight combines modalities with a learned per-node confidence :math:`\kappa^m_s`, and the ReLU
    prunes edges whose best weighted score is negative:

    .. math::
        w_{s \to t} = \mathrm{ReLU}\big(\max_m \alpha^m_{s \to t}\, \kappa^m_s\big), \qquad
        e^{(l)}_t = \sum_{s \in \mathcal{N}(t)} w_{s \to t}\, e^{(l-1)}_s, \qquad
        z = \sum_{l=0}^{L} e^{(l)}

    with :math:`e^{(0)} = \mathrm{norm}(E)` the ID embeddings. A node is
    :math:`[z \,\|\, c^1 \,\|\, \dots \,\|\, c^M]` and :math:`\hat y_{ui}` the inner product.

    More than two modalities: one prototype set, one score :math:`\alpha^m` and one confidence
    column :math:`\kappa^m` per modality; the edge weight is the maximum over all of them and every
    :math:`c^m` is concatenated, so the representation has ``(1 + M) * dim`` entries (the reference
    is written for image + text, with audio as a third, in the same way).

    Departures from MMRec's ``grcn.py``: routing updates the user prototypes from their items as the
    paper describes (MMRec passes user-to-item edges only, so its routing never changes a user's
    prototype); the L2 term is ``reg_weight`` times the mean squared ID embedding of the batch's
    users and items plus, per modality, the mean squared prototype of the batch's users (MMRec adds
    the whole image prototype table once more, an artifact of its two fixed modalities); items
    lacking a modality take the modality's mean feature.

    Args:
        inter: the training interaction graph.
        kg: the E-MMKG (its modality node types carry ``x`` and ``item``).
        dim: size of the ID embeddings and of each modality's prototypes (default ``64``).
        num_routing: routing iterations (MMRec's ``n_layers``, default ``3``).
        num_layers: propagation layers :math:`L` on the refined graph (default ``2``).
        reg_weight: L2 weight (default ``1e-3``; MMRec grid-searches 1e-1 .. 1e-5).
    """

    needs_features = True

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData | None = None,
        dim: int = 64,
        num_routing: int = 3,
        num_layers: int = 2,
        reg_weight: float = 1e-3,
    ) -> None:
        super().__init__(inter, reg_weight)
        features = dense_modal_features(kg, self.n_items, "GRCN")
        self.modalities = list(features)
        self.dim, self.num_routing, self.num_layers = dim, num_routing, num_layers
        self.features = FrozenFeatures(features)
        self.prototypes = torch.nn.ModuleList(
            _ModalPrototypes(self.n_users, x.size(1), dim) for x in features.values()
        )
        # one (U + N) x d table, Xavier over U + N as in MMRec (nn.blocks.IDEmbedding draws two)
        self.id_embedding = torch.nn.Parameter(torch.empty(self.n_users + self.n_items, dim))
        self.confidence = torch.nn.Parameter(torch.empty(self.n_users + self.n_items, len(self.modalities)))
        # first E edges user -> item, then item -> user; node ids: users, then items
        self.register_buffer("edge_index", inter.edge_index(), persistent=False)
        self.n_edges = inter.user.numel()
        self._pattern: tuple | None = None  # (device, EdgePattern, user, item), see _interactions
        # the refined weights are the normalisation; the graph's structure is fixed (cached)
        self.conv = LightGCNConv(normalize=False, cached=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_normal_(self.id_embedding)
        torch.nn.init.xavier_normal_(self.confidence)
        for proto in self.prototypes:
            proto.reset_parameters()

    def _interactions(self) -> tuple[EdgePattern, Tensor, Tensor]:
        """``(pattern, user, item)``: the interactions as edges item -> user (``.t()``: user ->
        item) and each one's user and item index, on the device of ``edge_index`` (built once per
        device)."""
        device = self.edge_index.device
        if self._pattern is None or self._pattern[0] != device:
            user, item = self.edge_index[0, : self.n_edges], self.edge_index[1, : self.n_edges] - self.n_users
            self._pattern = (
                device,
                EdgePattern(torch.stack([item, user]), self.n_items, self.n_users),
                user,
                item,
            )
        return self._pattern[1:]

    def _route(self, p: Tensor, f: Tensor, inter: EdgePattern, user: Tensor) -> Tensor:
        """Routing: each user's prototype moves towards its items, attention-weighted."""
        for _ in range(self.num_routing):
            a = softmax(edge_dot(inter, p, f), user, num_nodes=self.n_users)
            p = F.normalize(p + weighted_spmm(inter, a, f))
        return p

    def refine(self) -> tuple[Tensor, list[Tensor]]:
        r"""The refined edge weights :math:`w` ``[2E]`` (in ``edge_index`` order) and each
        modality's content representation :math:`c^m` ``[U + N, dim]``.

        An interaction's two directed edges share one score :math:`h_u^\top h_i` (only its
        softmax differs: over the item's users, or over the user's items), so the scores are
        computed once per interaction, and every product runs on the sparse pattern
        (:mod:`~emmkgr_pyg.nn.edge_ops`) without gathering an ``[E, dim]`` tensor."""
        inter, user, item = self._interactions()
        scores, content = [], []
        for k, proto in enumerate(self.prototypes):
            f = F.normalize(F.leaky_relu(proto.proj(self.features(k))))
            p = self._route(F.normalize(proto.preference), f, inter, user)
            s = edge_dot(inter, p, f)
            a_ui = softmax(s, item, num_nodes=self.n_items)  # edge u -> i, over the item's users
            a_iu = softmax(s, user, num_nodes=self.n_users)  # edge i -> u, over the user's items
            c_user = p + weighted_spmm(inter, a_iu, f)
            c_item = f + weighted_spmm(inter.t(), a_ui, p)
            content.append(torch.cat([c_user, c_item]))
            scores.append(torch.cat([a_ui, a_iu]))  # edge_index order: user -> item, then back
        weighted = torch.stack(scores, -1) * self.confidence[self.edge_index[0]]
        return torch.relu(weighted.max(-1).values), content

    def embed(self) -> Embeddings:
        weight, content = self.refine()
        z = layer_sum(self.conv, F.normalize(self.id_embedding), self.edge_index, self.num_layers, weight)
        rep = torch.cat([z, *content], dim=-1)
        return Embeddings(rep[: self.n_users], rep[self.n_users :], {"edge_weight": weight})

    def rec_losses(self, emb: Embeddings, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        losses = {self.rec_loss: self.pair_loss(emb.user[users], emb.item[pos], emb.item[neg])}
        if self.reg_weight:
            ids = self.id_embedding
            items = torch.cat([pos, neg.reshape(-1)]) + self.n_users
            reg = ids[users].pow(2).mean() + ids[items].pow(2).mean()
            reg = reg + sum(proto.preference[users].pow(2).mean() for proto in self.prototypes)
            losses["reg"] = self.reg_weight * reg
        return losses

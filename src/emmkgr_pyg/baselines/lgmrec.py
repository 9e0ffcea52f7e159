r"""LGMRec: "Local and Global Graph Learning for Multimodal Recommendation" (Guo et al., AAAI 2024),
as the MMRec toolbox runs it.

The modality features come from the E-MMKG (``kg[m].x`` with ``kg[m].item``); the model uses every
modality node type the graph has. It needs no knowledge-graph loss.
"""

from __future__ import annotations

import itertools
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.interaction import InteractionGraph
from ..nn.blocks import FrozenFeatures, IDEmbedding, info_nce, last_layer, layer_mean
from ..nn.conv import LightGCNConv, spmm_with_transpose
from ..nn.recommender import Embeddings, Recommender
from .common import dense_modal_features

#: ``cl_pairs``: the contrastive term over every modality pair per step, or one drawn pair
CL_PAIRS = ("all", "sample")


def _interaction_matrix(inter: InteractionGraph) -> tuple[Tensor, Tensor]:
    """The binary user-item matrix :math:`R` ``[U, N]`` and its transpose, as sparse CSR."""
    user, item = inter.distinct_pairs()  # repeated interactions count once
    mats = []
    for index, size in (
        (torch.stack([user, item]), (inter.n_users, inter.n_items)),
        (torch.stack([item, user]), (inter.n_items, inter.n_users)),
    ):
        coo = torch.sparse_coo_tensor(index, torch.ones(index.size(1)), size, check_invariants=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            mats.append(coo.coalesce().to_sparse_csr())
    return mats[0], mats[1]


class LGMRec(Recommender):
    r"""LGMRec (Guo et al., AAAI 2024): local graph embeddings (collaborative and modality-specific,
    on the user-item graph) plus global hypergraph embeddings over learnable hyperedges.

    With :math:`\tilde A = D^{-1/2} A D^{-1/2}` the normalised user-item adjacency
    (:class:`LightGCNConv`), :math:`R` the binary interactions, :math:`X^m` item features of
    modality :math:`m`, :math:`E` the ID embeddings:

    .. math::
        H^{C} = \frac{1}{L_{ui}+1} \sum_{l=0}^{L_{ui}} \tilde A^{l} E, \qquad
        H^{m} = \tilde A^{L_{mm}} \big[D_u^{-1} R X^m W^m;\ X^m W^m\big], \qquad
        H^{L} = H^{C} + \sum_m \mathrm{norm}(H^m)

    (local embeddings). Each modality has ``hyper_num`` hyperedges :math:`V^m`; the item and user
    memberships are a Gumbel-softmax (temperature :math:`\tau`) of their logits, then dropout with
    keep rate ``keep_rate``; the hypergraph layers pass item embeddings through the hyperedges:

    .. math::
        \Lambda^m_i = \operatorname{softmax}_\tau(X^m V^m), \qquad
        \Lambda^m_u = \operatorname{softmax}_\tau(R X^m V^m),

        I^{m,(0)} = H^{C}_{items}, \qquad
        I^{m,(l)} = \Lambda^m_i \Lambda^{m\top}_i I^{m,(l-1)}, \qquad
        U^{m} = \Lambda^m_u \Lambda^{m\top}_i I^{m,(L_h-1)}

    and the global embeddings :math:`H^{G} = \sum_m [U^m; I^m]` join the local ones:
    :math:`H = H^{L} + \alpha\, \mathrm{norm}(H^{G})`, :math:`\hat y_{ui} = h_u^\top h_i`.
    Loss: BPR, ``cl_weight`` times the InfoNCE (temperature :math:`\tau`, summed over the batch)
    between the hypergraph embeddings of two modalities, for the batch's users (against all users)
    and positive items (against all items), and ``reg_weight`` times the L2 norms (not squared) of
    the batch's final user, positive and negative embeddings over the batch size.

    More than two modalities: :math:`H^{L}` and :math:`H^{G}` sum over every modality (as the
    reference does for image + text), and the contrastive term is the mean over all modality pairs
    (the reference's single pair when there are two; none with one modality, where the reference
    falls back to LightGCN alone and this model keeps the local and global modality embeddings),
    or, with ``cl_pairs="sample"``, one pair drawn per step (that mean in expectation).

    Departures from MMRec's ``lgmrec.py``: in evaluation the memberships are the plain softmax
    :math:`\operatorname{softmax}(\cdot/\tau)` (the reference draws Gumbel noise at test time too);
    the InfoNCE is computed with a log-sum-exp (same value, no overflow, about twice as fast:
    :func:`~emmkgr_pyg.nn.blocks.info_nce`); items lacking a modality take the modality's mean
    feature.

    Args:
        inter: the training interaction graph.
        kg: the E-MMKG (its modality node types carry ``x`` and ``item``).
        dim: size of the ID embeddings and of the projected features (default ``64``).
        num_ui_layers: :math:`L_{ui}` (default ``2``).
        num_mm_layers: :math:`L_{mm}` (default ``2``).
        num_hyper_layers: :math:`L_h` (default ``1``).
        hyper_num: hyperedges per modality (default ``4``).
        keep_rate: keep rate of the dropout on the memberships (default ``0.5``).
        alpha: weight :math:`\alpha` of the global embeddings (default ``0.3``).
        cl_weight: weight of the contrastive loss (default ``1e-4``).
        temperature: :math:`\tau` of the Gumbel-softmax and of the InfoNCE (default ``0.2``).
        cl_pairs: which modality pairs the contrastive term averages over in a step: ``"all"``
            (default) or ``"sample"``, one pair drawn uniformly per step, the same term in
            expectation at ``1 / pairs`` of its cost (the same thing with two modalities, the
            reference's case; with four, as the generated default has, the term was ~80% of an
            epoch).
        reg_weight: weight of the norm penalty (default ``1e-6``).
        backend: sparse backend of the user-item propagation (default ``"auto"``).
    """

    needs_features = True

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData | None = None,
        dim: int = 64,
        num_ui_layers: int = 2,
        num_mm_layers: int = 2,
        num_hyper_layers: int = 1,
        hyper_num: int = 4,
        keep_rate: float = 0.5,
        alpha: float = 0.3,
        cl_weight: float = 1e-4,
        temperature: float = 0.2,
        cl_pairs: str = "all",
        reg_weight: float = 1e-6,
        backend: str = "auto",
    ) -> None:
        super().__init__(inter, reg_weight)
        if num_hyper_layers < 1:
            raise ValueError(f"LGMRec: num_hyper_layers must be >= 1 (got {num_hyper_layers}).")
        if not 0.0 < keep_rate <= 1.0:
            raise ValueError(f"LGMRec: keep_rate must be in (0, 1] (got {keep_rate}).")
        if cl_pairs not in CL_PAIRS:
            raise ValueError(f"LGMRec: cl_pairs={cl_pairs}; choose one of {CL_PAIRS}.")
        features = dense_modal_features(kg, self.n_items, "LGMRec")
        self.modalities = list(features)
        self.dim = dim
        self.num_ui_layers, self.num_mm_layers = num_ui_layers, num_mm_layers
        self.num_hyper_layers = num_hyper_layers
        self.hyper_num, self.keep_rate, self.alpha = hyper_num, keep_rate, alpha
        self.cl_weight, self.temperature, self.cl_pairs = cl_weight, temperature, cl_pairs
        self.ids = IDEmbedding(self.n_users, self.n_items, dim)
        dims = [x.size(1) for x in features.values()]
        self.features = FrozenFeatures(features)
        self.item_trs = torch.nn.ParameterList(torch.nn.Parameter(torch.empty(d, dim)) for d in dims)
        self.hyper = torch.nn.ParameterList(torch.nn.Parameter(torch.empty(d, hyper_num)) for d in dims)
        self.drop = torch.nn.Dropout(p=1.0 - keep_rate)
        self.register_buffer("edge_index", inter.edge_index(), persistent=False)
        self.conv = LightGCNConv(cached=True, backend=backend)
        self.adj, self.adj_t = _interaction_matrix(inter)
        degree = torch.bincount(inter.user, minlength=self.n_users).float()
        self.register_buffer("inv_user_degree", 1.0 / (degree + 1e-7), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.ids.reset_parameters()
        for w in itertools.chain(self.item_trs, self.hyper):
            torch.nn.init.xavier_uniform_(w)
        self.conv.reset_parameters()

    def _users_of(self, item_values: Tensor) -> Tensor:
        """:math:`R\\,Y` for an item-indexed ``Y``."""
        return spmm_with_transpose(self.adj, self.adj_t, item_values)

    def collaborative(self) -> Tensor:
        """:math:`H^C` ``[U + N, dim]``."""
        return layer_mean(self.conv, self.ids(), self.edge_index, self.num_ui_layers)

    def modality_local(self, j: int) -> Tensor:
        """:math:`H^m` ``[U + N, dim]`` of the ``j``-th modality."""
        item = self.features(j) @ self.item_trs[j]
        h = torch.cat([self._users_of(item) * self.inv_user_degree.unsqueeze(-1), item])
        return last_layer(self.conv, h, self.edge_index, self.num_mm_layers)

    def memberships(self, j: int) -> tuple[Tensor, Tensor]:
        r"""(:math:`\Lambda^m_u` ``[U, H]``, :math:`\Lambda^m_i` ``[N, H]``): Gumbel-softmax and
        dropout in training, the plain tempered softmax in evaluation."""
        item_logits = self.features(j) @ self.hyper[j]
        user_logits = self._users_of(item_logits)
        if self.training:
            user = self.drop(F.gumbel_softmax(user_logits, self.temperature, dim=1))
            item = self.drop(F.gumbel_softmax(item_logits, self.temperature, dim=1))
            return user, item
        tau = self.temperature
        return torch.softmax(user_logits / tau, 1), torch.softmax(item_logits / tau, 1)

    def hypergraph(self, user_hyper: Tensor, item_hyper: Tensor, item: Tensor) -> tuple[Tensor, Tensor]:
        """One modality's hypergraph propagation of the item embeddings ``item``:
        :math:`(U^m, I^m)`."""
        for _ in range(self.num_hyper_layers):
            edges = item_hyper.t() @ item
            user, item = user_hyper @ edges, item_hyper @ edges
        return user, item

    def embed(self) -> Embeddings:
        cge = self.collaborative()
        local = cge + sum(F.normalize(self.modality_local(j)) for j in range(len(self.modalities)))
        hyper_user, hyper_item = [], []
        for j in range(len(self.modalities)):
            user, item = self.hypergraph(*self.memberships(j), cge[self.n_users :])
            hyper_user.append(user)
            hyper_item.append(item)
        hyper_user, hyper_item = torch.stack(hyper_user), torch.stack(hyper_item)
        glob = torch.cat([hyper_user.sum(0), hyper_item.sum(0)])
        out = local + self.alpha * F.normalize(glob)
        extra = {"hyper_user": hyper_user, "hyper_item": hyper_item}
        return Embeddings(out[: self.n_users], out[self.n_users :], extra)

    def rec_losses(self, emb: Embeddings, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        u, i, j = emb.user[users], emb.item[pos], emb.item[neg]
        losses = {self.rec_loss: self.pair_loss(u, i, j)}
        pairs = list(itertools.combinations(range(len(self.modalities)), 2))
        if self.cl_weight and pairs:
            if self.cl_pairs == "sample":
                pairs = [pairs[int(torch.randint(len(pairs), ()))]]
            hu, hi = emb.extra["hyper_user"], emb.extra["hyper_item"]
            cl = sum(
                info_nce(hu[a][users], hu[b][users], hu[b], self.temperature)
                + info_nce(hi[a][pos], hi[b][pos], hi[b], self.temperature)
                for a, b in pairs
            )
            losses["cl"] = self.cl_weight * cl / len(pairs)
        if self.reg_weight:
            losses["reg"] = self.reg_weight * (u.norm() + i.norm() + j.norm()) / users.size(0)
        return losses

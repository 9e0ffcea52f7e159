r"""A neighbourhood prior for scoring: a user's training items vote for their neighbours in the
model's frozen item-item graph, and that vote is fused with the embedding score by per-user
z-scores (``train.score_prior``, an extension for any model with an item-item graph).

With :math:`\mathbf{x}_u \in \{0, 1\}^N` the user's training items and :math:`\mathbf{A}` the item-item
graph (:math:`A_{ij}` the weight of neighbour :math:`j` of item :math:`i`; E-MMKGR's: the graph the
E-MMKG's modal-modal edges induce, FREEDOM's: its kNN graph),

.. math::
    p_{ui} = \sum_j x_{uj} A_{ij}, \qquad
    \hat y_{ui} = z_u(\mathbf{h}_u \cdot \mathbf{h}_i) + \beta\, z_u(p_{ui}), \qquad
    z_u(s_{ui}) = \frac{s_{ui} - \mathrm{mean}_i\, s_{ui}}{\mathrm{std}_i\, s_{ui}}

(per user over all items; a user whose row is constant gets 0 there). The prior is the scorer of
item-based collaborative filtering on content neighbours (the content kNN of
``benchmarks/linear_reference.py``); the embeddings stay as trained: search and exported
``embeddings.pt`` do not see it.

The interaction prior (``train.interaction_prior``, any model) is the same vote over the item-item
graph the interactions themselves induce, normalised as LightGCN normalises the user-item graph:

.. math::
    q_{ui} = \sum_j x_{uj} (\tilde{\mathbf{R}}^\top \tilde{\mathbf{R}})_{ji}, \qquad
    \tilde{\mathbf{R}} = \mathbf{D}_U^{-1/2} \mathbf{R} \mathbf{D}_I^{-1/2},

i.e. two hops of the normalised user-item graph from the user's items (the linear filter of GF-CF,
Shen et al. 2021, "How Powerful is Graph Convolution for Recommendation?"), joined with weight
:math:`\gamma`: :math:`\hat y_{ui} = z_u(\mathbf{h}_u \cdot \mathbf{h}_i) + \beta z_u(p_{ui}) +
\gamma z_u(q_{ui})`.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..graph.interaction import InteractionGraph, csr_rows


def zscore_rows(scores: Tensor, eps: float = 1e-12) -> Tensor:
    """Each row standardised to mean 0 and (population) standard deviation 1; a constant row -> 0."""
    centred = scores - scores.mean(dim=1, keepdim=True)
    std = centred.pow(2).mean(dim=1, keepdim=True).sqrt()
    return centred / std.clamp(min=eps)


def _sparse_mm(a: Tensor, b: Tensor) -> Tensor:
    with warnings.catch_warnings():  # torch computes sparse products through CSR (beta)
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse.mm(a, b)


class _UserRows(torch.nn.Module):
    """The training items of batches of users as a sparse indicator ``[B, n_items]`` (a repeated
    interaction counts once)."""

    def __init__(self, inter: InteractionGraph) -> None:
        super().__init__()
        self.n_items = inter.n_items
        user, item = inter.distinct_pairs()
        indptr = torch.zeros(inter.n_users + 1, dtype=torch.long)
        indptr[1:] = torch.cumsum(torch.bincount(user, minlength=inter.n_users), 0)
        # buffers move with the model and are rebuilt, not saved
        self.register_buffer("indptr", indptr, persistent=False)
        self.register_buffer("items", item, persistent=False)

    def indicator(self, users: Tensor) -> Tensor:
        rows, items = csr_rows(self.indptr, self.items, users)
        return torch.sparse_coo_tensor(
            torch.stack([rows, items]),
            torch.ones(rows.numel(), device=users.device),
            (users.numel(), self.n_items),
            check_invariants=False,
        )


class NeighbourhoodPrior(_UserRows):
    r""":math:`p_{ui}` of the module docstring for batches of users.

    Args:
        inter: the training interactions (:math:`\mathbf{X}`; a repeated one counts once).
        edge_index: the item-item graph's edges ``[2, E]``, from a neighbour (row 0) to the item
            that lists it (row 1), as :meth:`~emmkgr_pyg.nn.recommender.Recommender.item_neighbors`
            gives them.
        edge_weight: their weights ``[E]`` (``None``: 1).
    """

    def __init__(self, inter: InteractionGraph, edge_index: Tensor, edge_weight: Tensor | None) -> None:
        super().__init__(inter)
        n_items = inter.n_items
        weight = torch.ones(edge_index.size(1)) if edge_weight is None else edge_weight.float()
        # A^T [N, N]: row j holds the items that list j as a neighbour, with their weights
        adj_t = torch.sparse_coo_tensor(
            edge_index.cpu(), weight.cpu(), (n_items, n_items), check_invariants=False
        )
        self.register_buffer("adj_t", adj_t.coalesce(), persistent=False)

    def forward(self, users: Tensor) -> Tensor:
        r""":math:`p_{ui}` ``[B, n_items]`` of ``users`` ``[B]``, i.e. :math:`\mathbf{X} \mathbf{A}^\top`
        for the users' rows of :math:`\mathbf{X}` (kept sparse: no dense ``[B, N]`` indicator)."""
        return _sparse_mm(self.indicator(users), self.adj_t).to_dense()


class InteractionPrior(_UserRows):
    r""":math:`q_{ui}` of the module docstring for batches of users, from the training interactions
    ``inter`` alone (a repeated one counts once; so do the degrees). Computed as
    :math:`(\mathbf{X}_B \tilde{\mathbf{R}}^\top) \tilde{\mathbf{R}}`, two sparse products, so the
    item-item matrix is never formed."""

    def __init__(self, inter: InteractionGraph) -> None:
        super().__init__(inter)
        user, item = inter.distinct_pairs()
        du = torch.bincount(user, minlength=inter.n_users).double()
        di = torch.bincount(item, minlength=inter.n_items).double()
        value = (du[user] * di[item]).rsqrt().float()
        shape = (inter.n_users, inter.n_items)
        r = torch.sparse_coo_tensor(
            torch.stack([user, item]), value, shape, check_invariants=False
        ).coalesce()
        self.register_buffer("r", r, persistent=False)
        self.register_buffer("r_t", r.t().coalesce(), persistent=False)

    def forward(self, users: Tensor) -> Tensor:
        """:math:`q_{ui}` ``[B, n_items]`` of ``users`` ``[B]``."""
        return _sparse_mm(_sparse_mm(self.indicator(users), self.r_t), self.r).to_dense()

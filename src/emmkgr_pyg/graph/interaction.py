"""The user-item training graph :math:`\\mathcal{G}^{IN}` that LightGCN propagates over."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch_geometric.utils import softmax

from ..data.dataset import TRAIN, MMDataset


@dataclass
class InteractionGraph:
    """Training interactions as a bipartite graph.

    Attributes:
        n_users, n_items: sizes.
        user, item: the training interactions ``[E]``.
    """

    n_users: int
    n_items: int
    user: Tensor
    item: Tensor

    @classmethod
    def from_dataset(cls, dataset: MMDataset) -> InteractionGraph:
        u, i = dataset.interactions.part(TRAIN)
        return cls(dataset.n_users, dataset.n_items, torch.from_numpy(u), torch.from_numpy(i))

    @property
    def num_nodes(self) -> int:
        return self.n_users + self.n_items

    def edge_index(self) -> Tensor:
        """Undirected homogeneous edges ``[2, 2E]``: users are ``0..U-1``, items ``U..U+N-1``."""
        items = self.item + self.n_users
        return torch.stack([torch.cat([self.user, items]), torch.cat([items, self.user])])

    def distinct_pairs(self) -> tuple[Tensor, Tensor]:
        """``(user, item)`` of the training interactions with repeats counted once, sorted by user
        then item."""
        key = torch.unique(self.user * self.n_items + self.item)
        return key // self.n_items, key % self.n_items

    def user_items_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr ``[U+1]``, items sorted per user) of the training interactions."""
        u = self.user.numpy()
        order = np.lexsort((self.item.numpy(), u))
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=self.n_users), out=indptr[1:])
        return indptr, self.item.numpy()[order]


def csr_rows(indptr: Tensor, values: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """The entries of CSR ``rows`` as ``(position in rows, value)`` pairs: e.g. a batch of users'
    training items from :meth:`InteractionGraph.user_items_csr`. On ``rows``' device."""
    start, end = indptr[rows], indptr[rows + 1]
    lengths = end - start
    dev = rows.device
    pos = torch.repeat_interleave(torch.arange(rows.numel(), device=dev), lengths)
    offsets = torch.arange(int(lengths.sum()), device=dev) - torch.repeat_interleave(
        torch.cumsum(lengths, 0) - lengths, lengths
    )
    return pos, values[torch.repeat_interleave(start, lengths) + offsets]


def degree_sensitive_weights(user: Tensor, item: Tensor, n_users: int, n_items: int) -> Tensor:
    r"""FREEDOM's sampling weight of each user-item edge, :math:`1/\sqrt{d_u d_i}` (``[E]``)."""
    du = torch.bincount(user, minlength=n_users).double()
    di = torch.bincount(item, minlength=n_items).double()
    return (du[user] * di[item]).rsqrt().float()


def degree_sensitive_prune(
    user: Tensor,
    item: Tensor,
    n_users: int,
    n_items: int,
    prune_ratio: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Degree-sensitive edge pruning: the indices of the edges that survive.

    Keeps :math:`\max(1, \lfloor E (1 - \rho) \rfloor)` edges drawn without replacement with
    probability proportional to :func:`degree_sensitive_weights`, so edges between popular nodes
    are pruned first.

    Args:
        user, item: the training edges ``[E]``.
        n_users, n_items: sizes.
        prune_ratio: :math:`\rho`, the fraction of edges removed (MMRec's ``dropout``), in ``[0, 1)``.
        generator: the random generator (default: torch's global one).
    """
    if not 0.0 <= prune_ratio < 1.0:
        raise ValueError(f"prune_ratio must be in [0, 1) (the fraction of edges removed), got {prune_ratio}.")
    n_edges = user.numel()
    if prune_ratio == 0.0:
        return torch.arange(n_edges)
    n_keep = max(1, int(n_edges * (1.0 - prune_ratio)))
    weights = degree_sensitive_weights(user, item, n_users, n_items)
    return torch.multinomial(weights, n_keep, replacement=False, generator=generator)


def user_cooccurrence(inter: InteractionGraph, k: int, chunk_size: int = 4096) -> tuple[Tensor, Tensor]:
    r"""Each user's ``k`` users with the most training items in common (DualGNN's user graph).

    :math:`C = B B^\top` for the binary user-item matrix :math:`B`, computed ``chunk_size`` users
    at a time with sparse products, so memory follows the number of co-occurring pairs, never
    ``U x U``. A user never lists itself; users with no common item are not listed; ties in the
    count go to the smaller user index.

    Returns:
        ``(edge_index, count)``: ``edge_index[0]`` the user, ``edge_index[1]`` a neighbour, sorted
        by user, then decreasing count, then neighbour; ``count`` the common items ``[E]``.
    """
    if k < 1:
        raise ValueError(f"user_cooccurrence: k must be >= 1 (got {k}).")
    user, item = inter.user.numpy(), inter.item.numpy()
    ones = np.ones(len(user), dtype=np.float32)
    b = sp.csr_matrix((ones, (user, item)), shape=(inter.n_users, inter.n_items))
    b.data[:] = 1.0  # repeated interactions count once
    bt = b.T.tocsr()
    rows, cols, counts = [], [], []
    for start in range(0, inter.n_users, chunk_size):
        c = (b[start : start + chunk_size] @ bt).tocoo()
        r, n, v = c.row.astype(np.int64) + start, c.col.astype(np.int64), np.rint(c.data).astype(np.int64)
        keep = (r != n) & (v > 0)
        r, n, v = r[keep], n[keep], v[keep]
        order = np.lexsort((n, -v, r))
        r, n, v = r[order], n[order], v[order]
        first = np.searchsorted(r, r, side="left")  # position of each row's first entry
        top = np.arange(len(r)) - first < k
        rows.append(r[top])
        cols.append(n[top])
        counts.append(v[top])
    edge_index = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]))
    return edge_index, torch.from_numpy(np.concatenate(counts))


#: how a user weighs its co-occurring users (:func:`user_cooccurrence_graph`)
USER_AGGR = ("softmax", "mean")


def user_cooccurrence_graph(inter: InteractionGraph, k: int, aggr: str = "softmax") -> tuple[Tensor, Tensor]:
    r"""The user co-occurrence graph of DualGNN (and E-MMKGR's ``user_graph_k``) as weighted edges
    from a neighbour to the user that lists it: the ``k`` users of :func:`user_cooccurrence`,
    weighted :math:`\beta_{uv} = \operatorname{softmax}_{v} C_{uv}` over the common items
    (``"softmax"``) or :math:`1/|\mathcal{N}_k(u)|` (``"mean"``).

    Returns:
        ``(edge_index, beta)``: ``edge_index[0]`` the neighbour, ``edge_index[1]`` the user.
    """
    if aggr not in USER_AGGR:
        raise ValueError(f"user_cooccurrence_graph: aggr '{aggr}' is not one of {USER_AGGR}.")
    (user, nbr), count = user_cooccurrence(inter, k)
    if aggr == "softmax":
        beta = softmax(count.float(), user, num_nodes=inter.n_users)
    else:
        beta = 1.0 / torch.bincount(user, minlength=inter.n_users).clamp(min=1)[user].float()
    return torch.stack([nbr, user]), beta

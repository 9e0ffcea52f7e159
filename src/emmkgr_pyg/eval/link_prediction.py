r"""Link prediction on held-out knowledge-graph triples: does the KG loss learn the E-MMKG?

For each held-out triple :math:`(h, r, t)` the true tail is ranked among candidate tails :math:`e`
by the model's distance :math:`d(h, r, e)` (smaller is better):

.. math::
    \mathrm{rank} = 1 + |\{e \in C_r \setminus F_{h,r} : d(h, r, e) < d(h, r, t)\}|
    + \tfrac{1}{2} |\{e \in C_r \setminus F_{h,r},\ e \ne t : d(h, r, e) = d(h, r, t)\}|

with :math:`C_r` the nodes of the relation's tail type (or every node) and, filtered,
:math:`F_{h,r}` the other known tails of :math:`(h, r)`; ties count half (the mean of the
optimistic and pessimistic rank, so a constant score does not rank first). Reported: MRR
(mean of :math:`1/\mathrm{rank}`), MR and Hits@k (the fraction with :math:`\mathrm{rank} \le k`).
Unfiltered and over every node, this is :meth:`torch_geometric.nn.kge.KGEModel.test`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..train.samplers import _contains

#: ``distance(head [B, 1], rel [B, 1], tail [1, C]) -> [B, C]``, global node and relation ids
Distance = Callable[[Tensor, Tensor, Tensor], Tensor]


@torch.no_grad()
def tail_ranks(
    distance: Distance,
    test: Tensor,
    num_nodes: int,
    num_relations: int,
    tail_range: Tensor | None = None,
    known: Tensor | None = None,
    batch_size: int = 64,
) -> Tensor:
    """The rank of each held-out triple's true tail (see the module docstring).

    Args:
        distance: the model's distance of broadcasting id tensors (:data:`Distance`).
        test: held-out triples ``[3, T]`` (head, relation, tail).
        num_nodes, num_relations: sizes of the id spaces.
        tail_range: ``[R, 2]`` (first id, count) of each relation's tail type; ``None``: every
            node is a candidate.
        known: every true triple ``[3, N]`` (training and held-out) to filter; ``None``: unfiltered.
        batch_size: triples scored at once.

    Returns:
        ranks ``[T]`` (float: ties count half).
    """
    keys = None
    if known is not None:
        keys = torch.unique((known[0] * num_relations + known[1]) * num_nodes + known[2])
    ranks = torch.empty(test.size(1), dtype=torch.float64)
    for rel in test[1].unique().tolist():
        idx = (test[1] == rel).nonzero().view(-1)
        if tail_range is None:
            cand = torch.arange(num_nodes)
        else:
            first, count = (int(v) for v in tail_range[rel])
            cand = torch.arange(first, first + count)
        for s in range(0, idx.numel(), batch_size):
            b = idx[s : s + batch_size]
            h, r, t = (test[i, b].view(-1, 1) for i in range(3))
            d = distance(h, r, cand.view(1, -1))
            true = distance(h, r, t).view(-1, 1)
            other = cand.view(1, -1) != t
            if keys is not None:
                other &= ~_contains(keys, (h * num_relations + r) * num_nodes + cand.view(1, -1))
            less = ((d < true) & other).sum(1)
            ties = ((d == true) & other).sum(1)
            ranks[b] = 1 + less.double() + 0.5 * ties.double()
    return ranks


def rank_metrics(ranks: Tensor, ks: Sequence[int] = (1, 10)) -> dict[str, float]:
    """``MRR``, ``MR`` and ``Hits@k`` of ranks (empty: an empty dict)."""
    if ranks.numel() == 0:
        return {}
    out = {"MRR": float((1.0 / ranks).mean()), "MR": float(ranks.mean())}
    out.update({f"Hits@{k}": float((ranks <= k).double().mean()) for k in ks})
    return out


def link_prediction(
    distance: Distance,
    test: Tensor,
    num_nodes: int,
    num_relations: int,
    tail_range: Tensor | None = None,
    known: Tensor | None = None,
    ks: Sequence[int] = (1, 10),
    batch_size: int = 64,
) -> dict[str, float]:
    """:func:`tail_ranks` summarised by :func:`rank_metrics`, plus ``n`` (the held-out triples)."""
    ranks = tail_ranks(distance, test, num_nodes, num_relations, tail_range, known, batch_size)
    return {**rank_metrics(ranks, ks), "n": int(test.size(1))}

"""Vectorised negative samplers: BPR triples (user, positive, negative) and corrupted KG triples.

Both draw in torch, whole batches at once, and reject collisions by a sorted-key lookup
(``searchsorted``), redrawing only the rejected entries: no Python loop per sample.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ..graph.interaction import InteractionGraph
from ..graph.triples import KGView
from ..nn.recommender import KGBatch
from ..utils import ConfigError

MAX_REDRAWS = 50


def _contains(sorted_keys: Tensor, keys: Tensor) -> Tensor:
    """Whether each of ``keys`` is in ``sorted_keys`` (ascending, unique)."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, keys).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == keys


class ItemNeighbors:
    """Each item's neighbours in an item-item graph, drawn in proportion to the edge weights.

    Args:
        edge_index: edges ``[2, E]`` from a neighbour (``edge_index[0]``) to the item that lists it
            (``edge_index[1]``), the layout of the models' item graphs; self-loops are dropped.
        edge_weight: ``[E]`` non-negative weights (default: all ``1``).
        n_items: the number of items.
    """

    def __init__(self, edge_index: Tensor, edge_weight: Tensor | None, n_items: int) -> None:
        nbr, item = edge_index.cpu()
        w = (
            torch.ones(nbr.numel(), dtype=torch.float64)
            if edge_weight is None
            else edge_weight.cpu().double()
        )
        keep = (nbr != item) & (w > 0)
        nbr, item, w = nbr[keep], item[keep], w[keep]
        order = torch.argsort(item * n_items + nbr)
        self.nbr, item = nbr[order], item[order]
        self.cum = torch.cumsum(w[order], 0)  # running weight, ascending within each item's block
        self.ptr = torch.zeros(n_items + 1, dtype=torch.long)
        self.ptr[1:] = torch.cumsum(torch.bincount(item, minlength=n_items), 0)

    def degree(self, items: Tensor) -> Tensor:
        return self.ptr[items + 1] - self.ptr[items]

    def draw(self, items: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One neighbour per entry of ``items`` (any shape; each must have one: see
        :meth:`degree`), weight-proportional."""
        start, end = self.ptr[items], self.ptr[items + 1]
        before = torch.where(
            start > 0, self.cum[(start - 1).clamp(min=0)], torch.zeros((), dtype=self.cum.dtype)
        )
        total = self.cum[end - 1] - before
        target = before + torch.rand(items.shape, generator=generator, dtype=self.cum.dtype) * total
        pos = torch.searchsorted(self.cum, target.reshape(-1), right=True).view(items.shape)
        return self.nbr[torch.minimum(torch.maximum(pos, start), end - 1)]


class BPRSampler:
    """Shuffled batches of training interactions, each with ``num_negatives`` items the user has
    not interacted with in training (drawn uniformly, or the last ``hard_negatives`` of them from
    the positive item's neighbours in an item-item graph).

    Args:
        inter: the training interactions.
        batch_size: interactions per batch (default ``2048``).
        generator: the torch generator that makes the draws repeatable.
        num_negatives: negatives per interaction (default ``1``: ``[B]``; more: ``[B, K]``).
        hard_negatives: how many of the ``num_negatives`` are drawn from the positive's
            ``neighbors`` (weight-proportional) instead of uniformly; a positive without
            neighbours, and a neighbour the user has in training, gets a uniform draw instead
            (default ``0``).
        neighbors: the item graph of ``hard_negatives`` (:class:`ItemNeighbors`).
    """

    def __init__(
        self,
        inter: InteractionGraph,
        batch_size: int = 2048,
        generator: torch.Generator | None = None,
        num_negatives: int = 1,
        hard_negatives: int = 0,
        neighbors: ItemNeighbors | None = None,
    ) -> None:
        if num_negatives < 1:
            raise ConfigError(f"train.num_negatives must be at least 1, got {num_negatives}.")
        if not 0 <= hard_negatives <= num_negatives or (hard_negatives and neighbors is None):
            raise ConfigError(
                f"train.hard_negatives={hard_negatives}: give 0 to {num_negatives} (train.num_negatives), "
                "with an item graph to draw them from."
            )
        self.user, self.item = inter.user, inter.item
        self.n_items = inter.n_items
        self.batch_size, self.num_negatives = batch_size, num_negatives
        self.hard_negatives, self.neighbors = hard_negatives, neighbors
        self.generator = generator
        self.keys = torch.unique(self.user * self.n_items + self.item)  # sorted

    def __len__(self) -> int:
        return (self.user.numel() + self.batch_size - 1) // self.batch_size

    def negatives(
        self, users: Tensor, num_negatives: int = 1, pos: Tensor | None = None, hard: int = 0
    ) -> Tensor:
        """Items ``[B]`` (or ``[B, K]``) outside each user's training items; with ``hard`` the
        last ``hard`` columns from the neighbours of ``pos`` ``[B]``."""
        shape = (users.numel(),) if num_negatives == 1 else (users.numel(), num_negatives)
        u = users.view(-1, 1).expand(users.numel(), num_negatives).reshape(shape)
        neg = torch.randint(self.n_items, shape, generator=self.generator)
        if hard:
            view = neg.view(users.numel(), num_negatives)  # shares neg's storage
            has = self.neighbors.degree(pos) > 0
            p = pos[has].view(-1, 1).expand(-1, hard)
            view[has, num_negatives - hard :] = self.neighbors.draw(p, self.generator)
        for _ in range(MAX_REDRAWS):
            bad = _contains(self.keys, u * self.n_items + neg)
            n_bad = int(bad.sum())
            if not n_bad:
                break
            neg[bad] = torch.randint(self.n_items, (n_bad,), generator=self.generator)
        return neg

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        perm = torch.randperm(self.user.numel(), generator=self.generator)
        for s in range(0, perm.numel(), self.batch_size):
            idx = perm[s : s + self.batch_size]
            users, pos = self.user[idx], self.item[idx]
            yield users, pos, self.negatives(users, self.num_negatives, pos, self.hard_negatives)


class KGNegativeSampler:
    """Shuffled batches of KG triples with corrupted heads or tails.

    Args:
        view: the E-MMKG's triples and the node range of each relation's head and tail type.
        batch_size: triples per batch (default ``2048``).
        num_negatives: corruptions per triple (default ``1``).
        typed: draw a corrupted tail (head) from the node type the relation's tail (head) has,
            e.g. an image node for ``has_image`` (default ``True``); otherwise from all nodes.
        corrupt_heads: corrupt the head instead of the tail for half of the triples
            (default ``False``: tails only, as the authors do).
        filtered: never draw a corruption that is itself a true triple (default ``True``).
        filter_any_relation: with ``filtered``, reject a corrupted tail ``t'`` (head ``h'``) when
            ``(h, ., t')`` (``(h', ., t)``) is a triple of *any* relation, not only of the
            triple's own (the authors: no tail the head already has; default ``False``).
        generator: the torch generator.
    """

    def __init__(
        self,
        view: KGView,
        batch_size: int = 2048,
        num_negatives: int = 1,
        typed: bool = True,
        corrupt_heads: bool = False,
        filtered: bool = True,
        filter_any_relation: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.triples = view.triples
        self.head_range, self.tail_range = view.head_range, view.tail_range
        self.num_nodes, self.num_relations = view.num_nodes, len(view.relations)
        self.batch_size, self.num_negatives = batch_size, num_negatives
        self.typed, self.corrupt_heads, self.filtered = typed, corrupt_heads, filtered
        self.filter_any_relation = filter_any_relation
        self.generator = generator
        self.keys = torch.unique(self._key(self.triples[0], self.triples[1], self.triples[2]))

    def _key(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        if self.filter_any_relation:  # every relation shares one key per (head, tail) pair
            r = torch.zeros_like(r)
        return (h * self.num_relations + r) * self.num_nodes + t

    def __len__(self) -> int:
        return (self.triples.size(1) + self.batch_size - 1) // self.batch_size

    def _draw(self, rel: Tensor, ranges: Tensor) -> Tensor:
        u = torch.rand(rel.shape, generator=self.generator)
        if not self.typed:
            return (u * self.num_nodes).long().clamp_(max=self.num_nodes - 1)
        start, count = ranges[rel, 0], ranges[rel, 1]
        return start + (u * count).long().clamp_(max=count - 1)

    def corrupt(self, head: Tensor, rel: Tensor, tail: Tensor) -> KGBatch:
        """Corruptions ``[B, K]`` of a batch of triples."""
        k = self.num_negatives
        h = head.view(-1, 1).expand(-1, k).clone()
        r = rel.view(-1, 1).expand(-1, k)
        t = tail.view(-1, 1).expand(-1, k).clone()
        if self.corrupt_heads:
            on_head = torch.rand(head.shape, generator=self.generator) < 0.5
        else:
            on_head = torch.zeros(head.shape, dtype=torch.bool)
        on_head = on_head.view(-1, 1).expand(-1, k)
        todo = torch.ones_like(h, dtype=torch.bool)
        for _ in range(MAX_REDRAWS):
            todo_h, todo_t = todo & on_head, todo & ~on_head
            if todo_h.any():
                h[todo_h] = self._draw(r[todo_h], self.head_range)
            if todo_t.any():
                t[todo_t] = self._draw(r[todo_t], self.tail_range)
            if not self.filtered:
                break
            todo = _contains(self.keys, self._key(h, r, t))
            if not todo.any():
                break
        return KGBatch(head, rel, tail, h, t)

    def __iter__(self) -> Iterator[KGBatch]:
        perm = torch.randperm(self.triples.size(1), generator=self.generator)
        for s in range(0, perm.numel(), self.batch_size):
            h, r, t = self.triples[:, perm[s : s + self.batch_size]]
            yield self.corrupt(h, r, t)

    def cycle(self) -> Iterator[KGBatch]:
        """Batches without end (a new shuffle after each pass)."""
        while True:
            yield from self

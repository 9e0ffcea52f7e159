r"""Full-ranking evaluation as the MMRec toolbox reports it.

Every item is ranked for every user; the user's training items are masked out (for validation and
test alike); users without held-out items, or without any training interaction, are skipped.
With :math:`R_u` the held-out items of user :math:`u` and :math:`h_{u,r} \in \{0, 1\}` whether the
item at rank :math:`r` is in :math:`R_u`:

.. math::
    \mathrm{Recall@}k = \frac{\sum_{r \le k} h_{u,r}}{|R_u|}, \quad
    \mathrm{Precision@}k = \frac{\sum_{r \le k} h_{u,r}}{k}, \quad
    \mathrm{NDCG@}k = \frac{\sum_{r \le k} h_{u,r} / \log_2(r+1)}
                          {\sum_{r \le \min(|R_u|, k)} 1 / \log_2(r+1)}

    \mathrm{MAP@}k = \frac{1}{\min(|R_u|, k)} \sum_{r \le k} h_{u,r}\, \mathrm{Precision@}r

averaged over users (computed by :func:`.metrics.hit_metrics`). Users are scored in batches, so
memory is ``O(batch x items)``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..graph.interaction import InteractionGraph, csr_rows
from .metrics import hit_metrics

METRICS = ("Recall", "NDCG", "Precision", "MAP")
DEFAULT_KS = (5, 10, 20, 50)


class RankingEvaluator:
    """Evaluates a scoring function on held-out interactions.

    Args:
        train: the training interactions (masked from the ranking).
        heldout_user, heldout_item: the held-out interactions (validation or test).
        ks: cut-offs (default ``(5, 10, 20, 50)``).
        batch_size: users scored at once (default ``1024``).
    """

    def __init__(
        self,
        train: InteractionGraph,
        heldout_user: np.ndarray | Tensor,
        heldout_item: np.ndarray | Tensor,
        ks: Sequence[int] = DEFAULT_KS,
        batch_size: int = 1024,
    ) -> None:
        self.n_items = train.n_items
        self.ks = tuple(sorted(ks))
        self.batch_size = batch_size
        hu = torch.as_tensor(heldout_user, dtype=torch.long)
        hi = torch.as_tensor(heldout_item, dtype=torch.long)
        has_train = torch.bincount(train.user, minlength=train.n_users) > 0
        keep = has_train[hu]
        hu, hi = hu[keep], hi[keep]
        self.users = torch.unique(hu)
        self.train_indptr, self.train_items = (torch.from_numpy(a) for a in train.user_items_csr())
        order = torch.argsort(hu, stable=True)
        hu, hi = hu[order], hi[order]
        counts = torch.bincount(hu, minlength=train.n_users)
        self.heldout_indptr = torch.zeros(train.n_users + 1, dtype=torch.long)
        torch.cumsum(counts, 0, out=self.heldout_indptr[1:])
        self.heldout_items = hi
        self.metric_names = tuple(f"{m}@{k}" for m in METRICS for k in self.ks)

    @property
    def num_users(self) -> int:
        return int(self.users.numel())

    def _rows(self, indptr: Tensor, values: Tensor, users: Tensor) -> tuple[Tensor, Tensor]:
        """(row in batch, value) pairs of the CSR rows of ``users``."""
        return csr_rows(indptr, values, users)

    @torch.no_grad()
    def hits(self, score_fn: Callable[[Tensor], Tensor], users: Tensor) -> tuple[Tensor, Tensor]:
        """``(hits [B, kmax] bool, n_heldout [B])`` of a batch of users."""
        scores = score_fn(users).float().clone()  # never write into the scorer's tensor
        dev = scores.device  # the model's (a GPU's): masks go there, hits come back
        rows, items = self._rows(self.train_indptr, self.train_items, users)
        scores[rows.to(dev), items.to(dev)] = -torch.inf
        kmax = min(self.ks[-1], self.n_items)
        top = torch.topk(scores, kmax, dim=1).indices
        truth = torch.zeros_like(scores, dtype=torch.bool)
        rows, items = self._rows(self.heldout_indptr, self.heldout_items, users)
        truth[rows.to(dev), items.to(dev)] = True
        n_true = self.heldout_indptr[users + 1] - self.heldout_indptr[users]
        return torch.gather(truth, 1, top).cpu(), n_true

    def evaluate(self, score_fn: Callable[[Tensor], Tensor], prefix: str = "") -> dict[str, float]:
        """Metrics averaged over the evaluated users, keyed ``f"{prefix}{metric}@{k}"``."""
        return self.evaluate_many(score_fn, {None: lambda scores: scores}, prefix)[None]

    def evaluate_many(
        self,
        parts_fn: Callable[[Tensor], Any],
        scorers: Mapping[Hashable, Callable[[Any], Tensor]],
        prefix: str = "",
    ) -> dict[Hashable, dict[str, float]]:
        """:meth:`evaluate` of several scoring functions that share costly parts, in one pass:
        per batch of users ``parts_fn(users)`` once, then each ``scorers[key](parts)`` ranked.
        Returns each key's metrics, those of ``evaluate(lambda u: scorers[key](parts_fn(u)))``."""
        sums = {key: dict.fromkeys(self.metric_names, 0.0) for key in scorers}
        for s in range(0, self.num_users, self.batch_size):
            users = self.users[s : s + self.batch_size]
            parts = parts_fn(users)
            for key, scorer in scorers.items():
                hit, n_true = self.hits(lambda _users, scorer=scorer, parts=parts: scorer(parts), users)
                for name, values in hit_metrics(hit, n_true, self.metric_names).items():
                    sums[key][name] += float(values.sum())
        n = max(self.num_users, 1)
        return {key: {f"{prefix}{k}": v / n for k, v in metric.items()} for key, metric in sums.items()}

"""The user-item training graph :math:`\\mathcal{G}^{IN}` that LightGCN propagates over."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

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

    def user_items_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr ``[U+1]``, items sorted per user) of the training interactions."""
        u = self.user.numpy()
        order = np.lexsort((self.item.numpy(), u))
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=self.n_users), out=indptr[1:])
        return indptr, self.item.numpy()[order]

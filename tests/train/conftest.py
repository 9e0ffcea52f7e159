"""A hand-made split dataset (30 users x 20 items, two modalities that miss some items)."""

from __future__ import annotations

import numpy as np
import pytest

from emmkgr_pyg.data.dataset import Catalog, MMDataset, Modality
from emmkgr_pyg.data.readers.base import finalize


def make_dataset(n_users: int = 30, n_items: int = 20, per_user: int = 7, seed: int = 0) -> MMDataset:
    """Users prefer the items of their group, so that training has something to learn."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        group = np.arange(n_items)[(np.arange(n_items) % 3) == (u % 3)]
        liked = rng.choice(group, size=min(per_user - 2, len(group)), replace=False)
        other = rng.choice(np.setdiff1d(np.arange(n_items), liked), size=2, replace=False)
        chosen = np.concatenate([liked, other])
        users += [u] * len(chosen)
        items += chosen.tolist()
    centers = rng.normal(size=(3, 8))
    coverage = {
        "text": [i for i in range(n_items) if i % 5 != 2],
        "image": [i for i in range(n_items) if i % 4 != 1],
    }
    mods = {
        m: Modality(
            m,
            "feature",
            np.array(idx),
            features=centers[np.array(idx) % 3] + 0.3 * rng.normal(size=(len(idx), 8)),
        )
        for m, idx in coverage.items()
    }
    catalog = Catalog(
        [f"i{i}" for i in range(n_items)],
        [None] * n_items,
        [None] * n_items,
        [[] for _ in range(n_items)],
        modalities=mods,
    )
    return finalize(
        "tiny_train", [f"u{u}" for u in range(n_users)], np.array(users), np.array(items), catalog
    )


@pytest.fixture(scope="module")
def dataset() -> MMDataset:
    return make_dataset()

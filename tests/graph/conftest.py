"""Hand-built multimodal datasets for the graph tests."""

from __future__ import annotations

import numpy as np
import pytest

from emmkgr_pyg.data.dataset import Catalog, MMDataset, Modality
from emmkgr_pyg.data.readers.base import finalize

#: item indices that have each modality (items 2 and 5 lack text, items 0, 3 and 4 lack an image)
COVERAGE = {"text": [0, 1, 3, 4, 6, 7], "image": [1, 2, 5, 6, 7], "title": list(range(8))}
DIMS = {"text": 6, "image": 5, "title": 4}


def make_dataset(n_users: int = 10, n_items: int = 8, coverage=None, features: bool = True, seed: int = 0):
    """A split dataset whose modalities cover only some items; features are random (no ties)."""
    coverage = COVERAGE if coverage is None else coverage
    rng = np.random.default_rng(seed)
    mods = {}
    for name, items in coverage.items():
        feats = rng.normal(size=(len(items), DIMS.get(name, 4))) if features else None
        mods[name] = Modality(name, "feature", np.array(items), features=feats)
    catalog = Catalog(
        [f"i{i}" for i in range(n_items)],
        [f"title {i}" for i in range(n_items)],
        [None] * n_items,
        [[] for _ in range(n_items)],
        modalities=mods,
    )
    user = np.repeat(np.arange(n_users), 4)
    item = np.concatenate([rng.choice(n_items, 4, replace=False) for _ in range(n_users)])
    return finalize("tiny", [f"u{u}" for u in range(n_users)], user, item, catalog)


@pytest.fixture
def tiny() -> MMDataset:
    return make_dataset()


@pytest.fixture
def dataset_factory():
    return make_dataset

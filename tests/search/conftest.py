"""A hand-built dataset (an E-MMKG to map queries with), item metadata, and one tiny trained run per
session."""

from __future__ import annotations

import numpy as np
import pytest

from emmkgr_pyg.data.dataset import Catalog, MMDataset, Modality
from emmkgr_pyg.data.readers.base import finalize
from emmkgr_pyg.search import ItemMeta

#: item indices that have each modality (item 2 lacks text, items 0 and 3 lack an image)
COVERAGE = {"text": [0, 1, 3, 4, 5, 6, 7, 8, 9], "image": [1, 2, 4, 5, 6, 7, 8, 9], "title": list(range(10))}
DIMS = {"text": 6, "image": 5, "title": 4}


def make_dataset(n_items: int = 10, seed: int = 0) -> MMDataset:
    """Feature modalities covering some items; random features (no ties); brands and paths."""
    rng = np.random.default_rng(seed)
    mods = {
        name: Modality(name, "feature", np.array(items), features=rng.normal(size=(len(items), DIMS[name])))
        for name, items in COVERAGE.items()
    }
    catalog = Catalog(
        [f"i{i}" for i in range(n_items)],
        [f"title {i}" for i in range(n_items)],
        ["Acme" if i % 2 else "Zenith" for i in range(n_items)],
        [["Office", "Pens" if i < 5 else "Paper"] for i in range(n_items)],
        modalities=mods,
    )
    n_users = 8
    user = np.repeat(np.arange(n_users), 4)
    item = np.concatenate([rng.choice(n_items, 4, replace=False) for _ in range(n_users)])
    return finalize("hand", [f"u{u}" for u in range(n_users)], user, item, catalog)


@pytest.fixture
def hand_dataset() -> MMDataset:
    return make_dataset()


@pytest.fixture(scope="session")
def tiny_run(tiny_run_dir):
    from emmkgr_pyg.runs import load_run

    return load_run(tiny_run_dir)


def make_meta(n: int) -> ItemMeta:
    """``n`` items: brands Acme Corp / Zenith (none for every fifth), paths Office Products >
    Paper | Writing Instruments (every third) > leaf 0-3."""
    return ItemMeta(
        [f"i{i}" for i in range(n)],
        [f"title {i}" for i in range(n)],
        [None if i % 5 == 0 else ("Acme Corp" if i % 2 else "Zenith") for i in range(n)],
        [["Office Products", "Paper" if i % 3 else "Writing Instruments", f"leaf {i % 4}"] for i in range(n)],
    )


@pytest.fixture
def item_meta():
    """``item_meta(n)``: see :func:`make_meta`."""
    return make_meta

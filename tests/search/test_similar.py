import numpy as np
import pytest

from emmkgr_pyg.search import ItemFilter, ItemIndex, ItemMeta, SearchError
from emmkgr_pyg.search.similar import similar_items


@pytest.fixture
def index():
    x = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
    meta = ItemMeta(
        [f"i{i}" for i in range(30)],
        [f"title {i}" for i in range(30)],
        ["Acme" if i % 2 else "Zenith" for i in range(30)],
        [["Office", "Pens" if i < 10 else "Paper"] for i in range(30)],
    )
    return ItemIndex(x, meta)


def test_similar_items_are_the_nearest_others(index):
    rows = similar_items(index, "i4", k=5)
    x = index._x
    s = x @ x[4]
    s[4] = -np.inf
    want = [f"i{i}" for i in np.argsort(-s, kind="stable")[:5]]
    assert [r["item_id"] for r in rows] == want
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["score"] >= rows[-1]["score"]


def test_filters_keep_top_k_full_and_exclude_the_item(index):
    rows = similar_items(index, "i3", k=4, item_filter=ItemFilter(category="pens", brand="acme"))
    assert len(rows) == 4  # i1, i5, i7, i9 pass (i3 itself is excluded)
    assert {r["item_id"] for r in rows} == {"i1", "i5", "i7", "i9"}
    assert all(r["brand"] == "Acme" and "Pens" in r["categories"] for r in rows)


def test_unknown_item_is_a_clear_error(index):
    with pytest.raises(SearchError, match="item=nope: no such item"):
        similar_items(index, "nope")

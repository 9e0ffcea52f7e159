import pytest

from emmkgr_pyg.search import ItemFilter, ItemMeta, SearchError


def test_item_filter_is_case_insensitive_and_anded(item_meta):
    meta = item_meta(12)
    cat = ItemFilter(category="WRITING").mask(meta)
    assert cat.tolist() == [i % 3 == 0 for i in range(12)]
    assert ItemFilter(category="office products > paper").mask(meta).tolist() == [
        i % 3 != 0 for i in range(12)
    ]
    brand = ItemFilter(brand="acme").mask(meta)
    assert brand.tolist() == [i % 5 != 0 and i % 2 == 1 for i in range(12)]  # no brand never passes
    assert (ItemFilter(category="writing", brand="acme").mask(meta) == (cat & brand)).all()
    assert not ItemFilter().active and ItemFilter().mask(meta).all()


def test_positions_follow_appends_and_unknown_ids_name_the_fix(item_meta):
    meta = item_meta(4)
    assert meta.position("i2") == 2 and "i3" in meta and "new" not in meta
    assert not ItemFilter(category="pens").mask(meta).any()
    assert meta.append("new", "A new pen", "Acme", ["Office Products", "Pens"]) == 4
    assert meta.position("new") == 4 and meta.row(4) == {
        "item_id": "new",
        "title": "A new pen",
        "brand": "Acme",
        "categories": ["Office Products", "Pens"],
    }
    assert ItemFilter(category="pens").mask(meta).tolist() == [False] * 4 + [True]  # cache refreshed
    with pytest.raises(SearchError, match="item=gone: no such item.*e.g. i0, i1, i2"):
        meta.position("gone")
    with pytest.raises(SearchError, match="already in the index"):
        meta.append("i0", None, None, [])
    with pytest.raises(SearchError, match="'brand' has 1 entries for 2 items"):
        ItemMeta(["a", "b"], [None, None], [None], [[], []])
    assert ItemFilter(brand="ZENITH").mask(meta).tolist() == [False, False, True, False, False]

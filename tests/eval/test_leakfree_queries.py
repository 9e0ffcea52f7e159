import numpy as np
import pytest

from emmkgr_pyg.data.dataset import Catalog
from emmkgr_pyg.data.synthetic import SyntheticReader
from emmkgr_pyg.data.text import tokens
from emmkgr_pyg.eval.leakfree_queries import (
    brand_tokens,
    build_leakfree_sets,
    has_identifier,
    ngrams,
    part_of,
)
from emmkgr_pyg.eval.search_queries import QuerySetConfig
from emmkgr_pyg.search.bm25 import indexed_text

CFG = dict(n_fine=200, n_category=50, min_targets=3, max_share=0.2)


@pytest.fixture(scope="module")
def shop():
    reader = SyntheticReader(n_users=200, n_items=150, n_interactions=2000, image_dim=8)
    ds = reader.read(None, "tiny")
    return ds, reader.heldout_reviews(), indexed_text(ds, ["title", "description", "review"])


def _sets(shop, part, **kw):
    ds, reviews, indexed = shop
    cfg = QuerySetConfig(**{**CFG, "part": part, **kw})
    return build_leakfree_sets(ds.catalog, indexed, ("heldout_review", reviews), cfg)


def test_no_fine_query_is_copied_from_the_index_or_names_an_identifier(shop):
    ds, reviews, indexed = shop
    sets = _sets(shop, "test")
    assert len(sets["fine"]) >= 5
    seen = {g for text in indexed for g in ngrams(tokens(text), 4)}
    brands = {t for b in ds.catalog.brand for t in tokens(b)}
    held = {}
    for i, text in reviews:
        held.setdefault(ds.catalog.item_ids[i], []).append(" ".join(tokens(text)))
    for q in sets["fine"]:
        toks = tokens(q.text)
        assert q.source == "heldout_review" and q.kind == "item" and len(q.targets) == 1
        assert not ngrams(toks, 4) & seen, q.text  # no run of 4 words of any indexed text
        assert not any(q.text.lower() in (t or "").lower() for t in indexed), q.text
        assert not any(any(c.isdigit() for c in t) for t in toks), q.text
        assert not set(toks) & brands, q.text
        # it comes from a held-out review of its target
        assert any(" ".join(toks) in r for r in held[q.targets[0]]), q.text


def test_coarse_queries_are_categories_without_identifiers(shop):
    ds, _, _ = shop
    sets = _sets(shop, "test")
    assert sets["coarse"]
    brands = brand_tokens(ds.catalog)
    for q in sets["coarse"]:
        assert q.kind == "category" and q.source == "categories"
        want = [x for x, path in zip(ds.catalog.item_ids, ds.catalog.categories) if q.text in path]
        assert sorted(q.targets) == sorted(want) and len(want) >= 3
        assert not has_identifier(tokens(q.text), brands)


def test_dev_and_test_never_share_a_query(shop):
    dev, test = _sets(shop, "dev", seed=1), _sets(shop, "test", seed=2)
    for s in ("fine", "coarse"):
        assert dev[s] and test[s]
        assert not {q.text for q in dev[s]} & {q.text for q in test[s]}
    assert not {q.targets[0] for q in dev["fine"]} & {q.targets[0] for q in test["fine"]}
    assert {part_of(f"category:{q.text.lower()}") for q in dev["coarse"]} == {"dev"}
    assert _sets(shop, "dev", seed=1) == dev  # seeded
    with pytest.raises(ValueError, match="part 'valid'"):
        _sets(shop, "valid")


def test_indexed_categories_leave_no_coarse_set_and_descriptions_can_be_the_source():
    cat = Catalog(
        [f"i{i}" for i in range(6)],
        ["Acme gel pen"] * 3 + ["Zenith notebook"] * 3,
        ["Acme"] * 3 + ["Zenith"] * 3,
        [["Office", "Pens"]] * 3 + [["Office", "Notebooks"]] * 3,
    )
    descs = [
        (0, "writes smoothly without smudging on glossy pages"),
        (1, "Acme model X200 refill lasts long"),  # only a brand and a model number: no query
        (2, "the gel pen writes nicely"),  # shares 'gel pen' with the titles but no 4 words
        (3, "ruled sheets stay flat when opened wide"),
        (4, "Zenith notebook with ruled sheets"),  # the window without the brand is kept
        (5, "stitched binding survives daily commuting abuse"),
    ]
    indexed = [f"{t} \n Office > Pens" for t in cat.title]
    cfg = QuerySetConfig(n_fine=10, n_category=5, min_targets=1, max_share=1.0, fine_words=4)
    got = {
        q.targets[0]: q.text
        for part in ("dev", "test")
        for q in build_leakfree_sets(
            cat, indexed, ("description", descs), QuerySetConfig(**{**vars(cfg), "part": part}), True
        )["fine"]
    }
    assert sorted(got) == ["i0", "i2", "i3", "i4", "i5"]
    assert got["i4"] == "notebook with ruled sheets" and got["i2"] == "the gel pen writes"
    sets = build_leakfree_sets(cat, indexed, None, cfg, categories_indexed=True)
    assert sets == {"fine": [], "coarse": []}
    with pytest.raises(ValueError, match="2 indexed texts for 6 items"):
        build_leakfree_sets(cat, indexed[:2], None, cfg)
    assert np.all([has_identifier(["x200"], set()), has_identifier(["acme"], {"acme"})])
    assert not has_identifier(["gel", "pen"], {"acme"})

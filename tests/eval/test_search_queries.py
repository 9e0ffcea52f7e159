import re

import pytest

from emmkgr_pyg.eval.query_store import descriptions
from emmkgr_pyg.eval.search_queries import QuerySetConfig, build_query_sets, tokens


def test_query_sets_follow_their_definitions(synthetic):
    cat, desc = synthetic.catalog, descriptions(synthetic)
    cfg = QuerySetConfig(n_fine=40, n_category=10, n_attribute=10, min_targets=3, max_share=0.2)
    sets = build_query_sets(cat, desc, cfg)
    pos = {x: i for i, x in enumerate(cat.item_ids)}
    texts = [f"{t or ''} \n {d or ''}".lower() for t, d in zip(cat.title, desc)]
    assert len(sets["fine"]) == 40
    for q in sets["fine"]:
        (target,) = q.targets
        i = pos[target]
        phrase = q.text.lower()
        assert phrase in texts[i], q
        assert phrase != cat.title[i].lower() and cat.title[i].lower() not in phrase
        assert not any(phrase in t for j, t in enumerate(texts) if j != i), q
        assert q.source in ("title", "description") and len(q.text.split()) >= 3
    kinds = {q.kind for q in sets["coarse"]}
    assert kinds == {"category", "attribute"}
    for q in sets["coarse"]:
        assert 3 <= len(q.targets) <= 0.2 * cat.n_items
        if q.kind == "category":
            want = [x for x, path in zip(cat.item_ids, cat.categories) if q.text in path]
        else:
            pattern = re.compile(rf"(?<![\w-]){re.escape(q.text)}(?![\w-])")
            want = [x for x, t in zip(cat.item_ids, texts) if pattern.search(" ".join(tokens(t)))]
            assert q.text not in {b.lower() for b in cat.brand if b}
        assert sorted(q.targets) == sorted(want), q.text


def test_query_sets_are_seeded(synthetic):
    cat, desc = synthetic.catalog, descriptions(synthetic)
    cfg = QuerySetConfig(n_fine=20, n_category=5, n_attribute=5, min_targets=3, max_share=0.2)
    a, b = build_query_sets(cat, desc, cfg), build_query_sets(cat, desc, cfg)
    assert a == b and len(a["fine"]) == 20
    c = build_query_sets(cat, desc, QuerySetConfig(**{**vars(cfg), "seed": 1}))
    assert [q.text for q in c["fine"]] != [q.text for q in a["fine"]]


def test_descriptions_must_match_the_catalogue(synthetic):
    with pytest.raises(ValueError, match="3 descriptions for 150 items"):
        build_query_sets(synthetic.catalog, [None] * 3)

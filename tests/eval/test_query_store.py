import copy
import json
import re
from pathlib import Path

import pytest

from emmkgr_pyg.data.readers import AmazonRawReader, LcRecJsonReader
from emmkgr_pyg.eval import query_store
from emmkgr_pyg.eval.query_store import (
    MANIFEST,
    descriptions,
    load_queries,
    query_file,
    query_sets,
    save_queries,
)
from emmkgr_pyg.eval.search_queries import QuerySetConfig, SearchQuery, build_query_sets

CFG = QuerySetConfig(n_fine=20, n_category=5, n_attribute=5, min_targets=3, max_share=0.2, protocol="lookup")


def test_queries_round_trip_as_jsonl(tmp_path):
    queries = [
        SearchQuery("fine-0", "fine", "item", "red cast iron pan", ["i3"], "title"),
        SearchQuery("category-0", "coarse", "category", "Pans", ["i1", "i3"]),
    ]
    path = save_queries(tmp_path / "fine.jsonl", queries)
    assert len(path.read_text().splitlines()) == 2
    assert load_queries(path) == queries
    (tmp_path / "bad.jsonl").write_text('{"qid": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_queries(tmp_path / "bad.jsonl")


def test_descriptions_are_the_description_texts_by_item(synthetic):
    mod = synthetic.modalities["description"]
    got = descriptions(synthetic)
    assert len(got) == synthetic.n_items and sum(d is not None for d in got) == len(mod.item_index)
    assert got[int(mod.item_index[0])] == mod.raw[0]
    assert descriptions(synthetic, None) == [None] * synthetic.n_items
    assert descriptions(synthetic, "no_such_modality") == [None] * synthetic.n_items


@pytest.fixture
def building(monkeypatch):
    """Counts the builds of :func:`query_sets` (a reuse builds nothing)."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return build_query_sets(*args, **kwargs)

    monkeypatch.setattr(query_store, "build_query_sets", counted)
    return calls


def test_saved_sets_are_reused_for_the_same_settings_and_catalogue(synthetic, tmp_path, building):
    first = query_sets(synthetic, CFG, tmp_path)
    assert building == [1] and (tmp_path / MANIFEST).is_file() and query_file(tmp_path, "fine").is_file()
    assert json.loads((tmp_path / MANIFEST).read_text())["counts"] == {s: len(q) for s, q in first.items()}
    assert query_sets(synthetic, CFG, tmp_path) == first and building == [1]
    query_sets(synthetic, CFG, tmp_path, rebuild=True)
    query_sets(synthetic, QuerySetConfig(**{**vars(CFG), "seed": 1}), tmp_path)
    query_sets(synthetic, CFG, tmp_path, description_modality=None)
    assert building == [1, 1, 1, 1]


@pytest.mark.parametrize("field", ["title", "description", "categories", "brand"])
def test_a_changed_catalogue_text_rebuilds_the_sets(synthetic, tmp_path, building, field):
    first = query_sets(synthetic, CFG, tmp_path)
    quoted = next(q for q in first["fine"] if q.source == "title")  # quotes its target's title
    changed = copy.deepcopy(synthetic)
    i = changed.catalog.item_ids.index(quoted.targets[0])
    if field == "title":
        changed.catalog.title[i] = "Zyxwv Qwerty Plumbus Grommet Flange Sprocket"
    elif field == "description":
        mod = changed.modalities["description"]
        mod.raw = list(mod.raw)
        mod.raw[0] = mod.raw[0] + " now with a plumbus"
    elif field == "categories":
        changed.catalog.categories[i] = [*changed.catalog.categories[i], "Plumbuses"]
    else:
        changed.catalog.brand[i] = "Plumbus Inc"
    second = query_sets(changed, CFG, tmp_path)
    assert building == [1, 1]
    assert second == build_query_sets(changed.catalog, descriptions(changed), CFG)
    if field == "title":  # the stale set would still quote the old title
        assert quoted not in second["fine"] and second["fine"] != first["fine"]


def test_leakfree_sets_need_their_inputs_and_are_keyed_by_their_source_text(
    synthetic, tmp_path, building, monkeypatch
):
    from emmkgr_pyg.eval.leakfree_queries import LeakFreeInputs, build_leakfree_sets

    leakfree_builds = []
    monkeypatch.setattr(
        query_store,
        "build_leakfree_sets",
        lambda *a, **k: leakfree_builds.append(1) or build_leakfree_sets(*a, **k),
    )

    cfg = QuerySetConfig(**{**vars(CFG), "protocol": "leakfree", "part": "dev"})
    with pytest.raises(ValueError, match="leakfree protocol needs LeakFreeInputs"):
        query_sets(synthetic, cfg, tmp_path)
    with pytest.raises(ValueError, match="protocol=exact: choose one of"):
        query_sets(synthetic, QuerySetConfig(protocol="exact"), tmp_path)
    n = synthetic.n_items
    reviews = [
        (i, f"sturdy frame holds up well after months of daily use number {w}")
        for i, w in enumerate(["one", "two", "three"] * (n // 3))
    ]
    inputs = LeakFreeInputs(list(synthetic.catalog.title), ("heldout_review", reviews), False)
    first = query_sets(synthetic, cfg, tmp_path, leakfree=inputs)
    assert json.loads((tmp_path / MANIFEST).read_text())["fine_source"] == "heldout_review"
    assert query_sets(synthetic, cfg, tmp_path, leakfree=inputs) == first and len(leakfree_builds) == 1
    changed = LeakFreeInputs(inputs.indexed, ("heldout_review", [(0, "a different review")]), False)
    query_sets(synthetic, cfg, tmp_path, leakfree=changed)  # other source text: rebuilt
    other_index = LeakFreeInputs([None] * n, inputs.fine_source, False)
    query_sets(synthetic, cfg, tmp_path, leakfree=other_index)  # other indexed text: rebuilt
    assert json.loads((tmp_path / MANIFEST).read_text())["settings"]["protocol"] == "leakfree"
    assert first["coarse"] and all(q.source == "categories" for q in first["coarse"])
    assert len(leakfree_builds) == 3 and not building  # rebuilt twice; the lookup builder unused


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_read_query_file_resolves_targets_and_categories(synthetic, tmp_path):
    cat = synthetic.catalog
    leaf = cat.categories[0][-1]
    expected = [i for i, p in zip(cat.item_ids, cat.categories, strict=True) if leaf in p]
    path = _write(
        tmp_path / "mine.jsonl",
        [
            {"query": " something warm for winter ", "category": leaf.upper(), "set": "needs"},
            "",
            {"query": "that exact pan", "targets": [cat.item_ids[3]], "id": "q7"},
            {"query": "either of these", "targets": [cat.item_ids[1], cat.item_ids[2], cat.item_ids[1]]},
        ],
    )
    sets = query_store.read_query_file(path, cat)
    assert list(sets) == ["needs", "user"]
    (need,) = sets["needs"]
    assert (need.text, need.kind, need.targets) == ("something warm for winter", "category", expected)
    one, two = sets["user"]
    assert (one.qid, one.kind, one.targets) == ("q7", "item", [cat.item_ids[3]])
    assert (two.qid, two.kind, two.targets) == ("user-1", "items", cat.item_ids[1:3])


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", r"mine.jsonl:2: not JSON"),
        ('["a list"]', r"mine.jsonl:2: a list, not an object"),
        ('{"query": "x", "category": "Pans", "weight": 2}', r"mine.jsonl:2: unknown field\(s\) \['weight'\]"),
        ('{"category": "Pans"}', r"mine.jsonl:2: field 'query' is missing"),
        ('{"query": "x"}', r"mine.jsonl:2: give exactly one of 'targets'"),
        ('{"query": "x", "targets": []}', r"mine.jsonl:2: field 'targets' must be a non-empty list"),
        (
            '{"query": "x", "targets": ["NOPE"]}',
            r"mine.jsonl:2: field 'targets' names 1 item id\(s\) .*'NOPE'",
        ),
        ('{"query": "x", "category": "No Such Shelf"}', r"mine.jsonl:2: field 'category' 'No Such Shelf'"),
    ],
)
def test_read_query_file_names_the_line_and_field_of_bad_input(synthetic, tmp_path, line, message):
    good = {"query": "x", "targets": [synthetic.catalog.item_ids[0]]}
    path = _write(tmp_path / "mine.jsonl", [good, line])
    with pytest.raises(ValueError, match=message):
        query_store.read_query_file(path, synthetic.catalog)


def test_read_query_file_rejects_a_missing_or_empty_file(synthetic, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such query file"):
        query_store.read_query_file(tmp_path / "none.jsonl", synthetic.catalog)
    with pytest.raises(ValueError, match="no queries"):
        query_store.read_query_file(_write(tmp_path / "empty.jsonl", ["", " "]), synthetic.catalog)


QUERIES = Path(__file__).resolve().parents[2] / "benchmarks" / "queries"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@pytest.mark.parametrize(
    "name, folder, read, count",
    [
        (
            "amazon_office_needs",
            "amazon-office-2014",
            lambda root: LcRecJsonReader("Office").read(root, "o"),
            56,
        ),
        (
            "amazon_office_needs_dev",
            "amazon-office-2014",
            lambda root: LcRecJsonReader("Office").read(root, "o"),
            95,
        ),
        (
            "amazon_magazine_needs",
            "amazon-magazine-2018",
            lambda root: AmazonRawReader("Magazine_Subscriptions").read(root, "m"),
            49,
        ),
    ],
)
def test_shipped_need_queries_read_against_their_catalogue(shared, name, folder, read, count):
    """The hand-written need sets of benchmarks/queries name items and categories their catalogue
    has, and a query naming its items (``targets``) copies no three-word run of their title or
    description: they are a shopper's words, not a lookup."""
    ds = read(shared(folder))
    (queries,) = query_store.read_query_file(QUERIES / f"{name}.jsonl", ds.catalog).values()
    assert len(queries) == count and all(q.targets for q in queries)
    rows = [json.loads(line) for line in (QUERIES / f"{name}.jsonl").read_text().splitlines()]
    pos = {x: i for i, x in enumerate(ds.catalog.item_ids)}
    texts: dict[int, str] = {}
    for m in ("title", "description"):
        mod = ds.catalog.modalities.get(m)
        for j, i in enumerate(mod.item_index if mod is not None else []):
            texts[int(i)] = texts.get(int(i), "") + " " + " ".join(_words(mod.raw[j]))
    for row in (r for r in rows if "targets" in r):
        words = _words(row["query"])
        own = " ".join(texts.get(pos[t], "") for t in row["targets"])
        copied = [
            g for g in (" ".join(words[i : i + 3]) for i in range(len(words) - 2)) if f" {g} " in f" {own} "
        ]
        assert not copied, (row["id"], copied)


def test_later_need_dev_queries_target_no_held_out_item(shared):
    """The need dev queries written in stop 28 (ids from dev-need-48) target no item that a held-out
    Office need query targets (the first 48 share some through the category tree)."""
    ds = LcRecJsonReader("Office").read(shared("amazon-office-2014"), "o")
    (held_out,) = query_store.read_query_file(QUERIES / "amazon_office_needs.jsonl", ds.catalog).values()
    (dev,) = query_store.read_query_file(QUERIES / "amazon_office_needs_dev.jsonl", ds.catalog).values()
    taken = {t for q in held_out for t in q.targets}
    later = [q for q in dev if int(q.qid.rsplit("-", 1)[1]) >= 48]
    assert len(later) == 47
    assert all(not (set(q.targets) & taken) for q in later), [q.qid for q in later if set(q.targets) & taken]

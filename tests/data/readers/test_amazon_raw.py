import gzip
import json
import logging
from collections import Counter

import numpy as np
import pytest

from emmkgr_pyg.data.dataset import TRAIN, DataError
from emmkgr_pyg.data.readers import AmazonRawReader
from emmkgr_pyg.data.text import clean_text, is_html_fragment

MAGAZINE = "Magazine_Subscriptions"


def _lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _write_gz(path, records, fmt=repr):
    """One record per line, gzipped: ``repr`` gives 2014 Python literals, ``json.dumps`` 2018."""
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else fmt(r)) + "\n")


def _k_core(pairs, k):
    """A plain-Python k-core, independent of the reader's numpy version."""
    pairs = set(pairs)
    while True:
        users = Counter(u for u, _ in pairs)
        items = Counter(i for _, i in pairs)
        kept = {(u, i) for u, i in pairs if users[u] >= k and items[i] >= k}
        if kept == pairs:
            return pairs
        pairs = kept


def test_magazine_2018_defects_are_counted(shared, caplog):
    root = shared("amazon-magazine-2018")
    reviews = _lines(root / f"{MAGAZINE}_5.json.gz")
    meta = _lines(root / f"meta_{MAGAZINE}.json.gz")
    pairs = [(r["reviewerID"], r["asin"]) for r in reviews]
    first_meta = {}
    for m in meta:
        first_meta.setdefault(m["asin"], m)
    reviewed = {i for _, i in pairs}

    with caplog.at_level(logging.WARNING):
        ds = AmazonRawReader(MAGAZINE, k_core=1).read(root, "amazon_magazine")
    rep = ds.report
    assert rep["release"] == "2018"
    assert rep["lines_read"] == {f"{MAGAZINE}_5.json.gz": 2375, f"meta_{MAGAZINE}.json.gz": 3385}
    assert set(rep["bad_lines"].values()) == {0}
    # the shipped "5-core" repeats 73 (user, item) pairs (print and Kindle reviews of one magazine)
    assert rep["duplicate_reviews_dropped"] == len(pairs) - len(set(pairs)) == 73
    assert rep["duplicate_meta_rows"] == len(meta) - len(first_meta) == 1065
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (348, 157, 2302)
    assert rep["items_without_metadata"] == len(reviewed - set(first_meta)) == 6
    html = sum(is_html_fragment(first_meta[a]["title"]) for a in reviewed & set(first_meta))
    assert rep["html_fragment_titles"] == html == 148  # PROVENANCE: 148 of 151 reviewed items
    assert ds.modalities["title"].n_items_with == 3
    assert sorted(t for t in ds.catalog.title if t) == [
        "Gourmet (1-year)",
        "SmartMoney (1-year)",
        "Woman's Day",
    ]
    assert rep["reviews_missing_review_text"] == 1
    assert "html_fragment_titles=148" in caplog.text

    # the file is not a 5-core once duplicates are gone: the reader's 5-core removes more
    ds5 = AmazonRawReader(MAGAZINE).read(root, "amazon_magazine")
    core = _k_core(pairs, 5)
    assert len(ds5.interactions) == len(core) == 2027
    assert (ds5.n_users, ds5.n_items) == (len({u for u, _ in core}), len({i for _, i in core}))
    assert (ds5.n_users, ds5.n_items) == (294, 132)
    assert ds5.report["users_removed_by_k_core"] == 348 - 294
    assert ds5.report["items_removed_by_k_core"] == 157 - 132
    got = {
        (ds5.user_ids[u], ds5.catalog.item_ids[i])
        for u, i in zip(ds5.interactions.user, ds5.interactions.item, strict=True)
    }
    assert got == core
    assert ds5.split_counts() == {"train": 1430, "valid": 295, "test": 302}
    mods = {m: v.n_items_with for m, v in ds5.modalities.items()}
    assert mods == {"title": 2, "description": 123, "review": 132}
    assert ds5.report["html_fragment_titles"] == 126
    assert ds5.catalog.image_urls[0][0].startswith("https://images-na.ssl-images-amazon.com/")


def test_magazine_review_modality_has_no_heldout_text(shared):
    root = shared("amazon-magazine-2018")
    ds = AmazonRawReader(MAGAZINE).read(root, "amazon_magazine")
    texts = {
        (r["reviewerID"], r["asin"]): clean_text(r.get("reviewText"))
        for r in reversed(_lines(root / f"{MAGAZINE}_5.json.gz"))
    }  # reversed: the first review of a pair wins
    review = ds.modalities["review"]
    by_item = dict(zip(review.item_index.tolist(), review.raw, strict=True))
    inter = ds.interactions
    train_texts = {}
    for u, i, s in zip(inter.user, inter.item, inter.split, strict=True):
        body = texts[ds.user_ids[u], ds.catalog.item_ids[i]]
        if s == TRAIN and body:
            assert body in by_item[int(i)]
            train_texts.setdefault(int(i), []).append(body)
    n_checked = 0
    for u, i, s in zip(inter.user, inter.item, inter.split, strict=True):
        body = texts[ds.user_ids[u], ds.catalog.item_ids[i]]
        # held-out review bodies (long enough to be unique, not quoted by a training review)
        if s != TRAIN and body and len(body) > 40 and not any(body in t for t in train_texts.get(int(i), [])):
            assert body not in by_item.get(int(i), "")
            n_checked += 1
    assert n_checked > 400  # of 597 held-out interactions


def _office_2014(root, extra_reviews=()):
    """A tiny 2014 folder; with k_core=2 the k-core must drop user D, then item i4 (cascade)."""
    reviews = [
        {
            "reviewerID": "A",
            "asin": "i1",
            "overall": 5.0,
            "unixReviewTime": 30,
            "summary": "Great",
            "reviewText": "A on i1",
        },
        {
            "reviewerID": "A",
            "asin": "i2",
            "overall": 4.0,
            "unixReviewTime": 10,
            "summary": "Fine",
            "reviewText": "A on i2",
        },
        {
            "reviewerID": "A",
            "asin": "i3",
            "overall": 3.0,
            "unixReviewTime": 20,
            "summary": "Meh",
            "reviewText": "A on i3",
        },
        {
            "reviewerID": "B",
            "asin": "i1",
            "overall": 2.0,
            "unixReviewTime": 40,
            "summary": "Bad",
            "reviewText": "B on i1",
        },
        {
            "reviewerID": "B",
            "asin": "i2",
            "overall": 1.0,
            "unixReviewTime": 50,
            "summary": "Worse",
            "reviewText": "B on i2",
        },
        {
            "reviewerID": "C",
            "asin": "i1",
            "overall": 5.0,
            "unixReviewTime": 60,
            "summary": "Yes",
            "reviewText": "C on i1",
        },
        {
            "reviewerID": "C",
            "asin": "i3",
            "overall": 5.0,
            "unixReviewTime": 70,
            "summary": "Good",
            "reviewText": "C on i3",
        },
        {"reviewerID": "D", "asin": "i4", "overall": 5.0, "unixReviewTime": 80},
        {"reviewerID": "D", "asin": "i1", "overall": 5.0, "unixReviewTime": 90},
        {
            "reviewerID": "A",
            "asin": "i1",
            "overall": 1.0,
            "unixReviewTime": 99,
            "summary": "again",
            "reviewText": "duplicate",
        },
        {"asin": "i1", "overall": 5.0, "summary": "anonymous"},
        *extra_reviews,
    ]
    meta = [
        {
            "asin": "i1",
            "title": "Blue &amp; Gold Pen",
            "description": "A <b>fine</b> pen.",
            "brand": "Pens Inc",
            "categories": [["Office Products", "Pens"], ["Gifts"]],
            "imUrl": "http://img/i1.jpg",
        },
        {
            "asin": "i2",
            "title": '<span class="a-size-medium a-color-secondary"',
            "categories": [["Office Products"]],
        },
        {"asin": "i2", "title": "second row, ignored"},
        {"asin": "i4", "title": "filtered out"},
        {"title": "no asin"},
    ]
    _write_gz(root / "reviews_Office_5.json.gz", reviews)
    _write_gz(root / "meta_Office.json.gz", meta)


def test_2014_python_literals_and_k_core(tmp_path):
    _office_2014(tmp_path)
    ds = AmazonRawReader("Office", k_core=2).read(tmp_path, "office")
    rep = ds.report
    assert rep["release"] == "2014"
    assert ds.user_ids == ["A", "B", "C"]
    assert ds.catalog.item_ids == ["i1", "i2", "i3"]
    assert len(ds.interactions) == 7
    assert (rep["users_removed_by_k_core"], rep["items_removed_by_k_core"]) == (1, 1)
    assert rep["interactions_removed_by_k_core"] == 2
    assert rep["duplicate_reviews_dropped"] == 1
    assert rep["reviews_missing_ids"] == 1
    assert (rep["duplicate_meta_rows"], rep["meta_rows_missing_asin"]) == (1, 1)
    assert (rep["html_fragment_titles"], rep["items_without_metadata"]) == (1, 1)
    assert rep["lines_read"] == {"reviews_Office_5.json.gz": 11, "meta_Office.json.gz": 5}

    cat = ds.catalog
    assert cat.title == ["Blue & Gold Pen", None, None]
    assert cat.brand == ["Pens Inc", None, None]
    assert cat.categories == [["Office Products", "Pens"], ["Office Products"], []]
    assert cat.image_urls == [["http://img/i1.jpg"], [], []]
    assert ds.modalities["title"].item_index.tolist() == [0]
    assert ds.modalities["description"].raw == ["A fine pen."]

    inter = ds.interactions
    first = (inter.user == 0) & (inter.item == 0)  # (A, i1): the first review, not the duplicate
    assert inter.rating[first].tolist() == [5.0] and inter.timestamp[first].tolist() == [30]
    # split: A (3 interactions) gets 1/1/1, B and C (2) get 1 train + 1 test
    assert ds.split_counts() == {"train": 3, "valid": 1, "test": 3}


def test_review_modality_holds_training_reviews_only(tmp_path):
    users, items = [f"U{u}" for u in range(12)], [f"I{i}" for i in range(8)]
    reviews = [
        {
            "reviewerID": u,
            "asin": i,
            "overall": 3.0,
            "unixReviewTime": 1000 - 10 * a - b,
            "summary": f"S-{u}-{i}",
            "reviewText": f"T-{u}-{i}",
        }
        for a, u in enumerate(users)
        for b, i in enumerate(items)
    ]
    _write_gz(tmp_path / "Toys_5.json.gz", reviews, json.dumps)
    _write_gz(tmp_path / "meta_Toys.json.gz", [{"asin": i} for i in items], json.dumps)
    ds = AmazonRawReader("Toys").read(tmp_path, "toys")
    assert ds.report["release"] == "2018"
    review = ds.modalities["review"]
    assert review.item_index.tolist() == list(range(8))
    inter = ds.interactions
    assert set(np.unique(inter.split).tolist()) == {0, 1, 2}
    for i, text in zip(review.item_index, review.raw, strict=True):
        mine = inter.item == i
        train = [
            f"S-{ds.user_ids[u]}-{items[i]} T-{ds.user_ids[u]}-{items[i]}"
            for u in inter.user[mine & (inter.split == TRAIN)]
        ]
        # time order: later users reviewed earlier (smaller unixReviewTime)
        assert text == " ".join(sorted(train, key=lambda t: -int(t.split("-")[1][1:])))
        for u in inter.user[mine & (inter.split != TRAIN)]:
            assert f"-{ds.user_ids[u]}-{items[i]}" not in text
    # the held-out reviews (leak-free search queries come from them): exactly the other splits'
    held = AmazonRawReader("Toys").heldout_reviews(tmp_path)
    expected = sorted(
        (int(i), f"S-{ds.user_ids[u]}-{items[i]} T-{ds.user_ids[u]}-{items[i]}")
        for u, i, s in zip(inter.user, inter.item, inter.split, strict=True)
        if s != TRAIN
    )
    assert sorted(held) == expected and len(held) == int((inter.split != TRAIN).sum()) > 0


def test_bad_lines_skip_or_fail(tmp_path):
    _office_2014(tmp_path, extra_reviews=["{'reviewerID': 'C', 'asin': ", "[1, 2]"])
    ds = AmazonRawReader("Office", k_core=2).read(tmp_path, "office")
    assert ds.report["bad_lines"] == {"reviews_Office_5.json.gz": 2, "meta_Office.json.gz": 0}
    assert len(ds.interactions) == 7
    with pytest.raises(DataError, match=r"reviews_Office_5\.json\.gz, line 12: unreadable"):
        AmazonRawReader("Office", on_bad_line="fail").read(tmp_path, "office")


def test_metadata_of_the_wrong_type_is_dropped_or_named(tmp_path, caplog):
    items = ["i1", "i2", "i3"]
    reviews = [
        {"reviewerID": u, "asin": i, "overall": 4.0, "unixReviewTime": 1, "reviewText": "ok"}
        for u in ("A", "B", "C")
        for i in items
    ]
    meta = [
        {"asin": "i1", "title": 12345, "brand": "Acme", "category": ["Office", "Pens"]},
        {"asin": "i2", "title": "Good pen", "category": 7},
        {"asin": "i3", "title": "Bad \ud83d emoji", "description": ["fine", "text"]},
    ]
    _write_gz(tmp_path / "Office_5.json.gz", reviews, json.dumps)
    _write_gz(tmp_path / "meta_Office.json.gz", meta, json.dumps)
    ds = AmazonRawReader("Office", k_core=1).read(tmp_path, "office")
    # on_bad_line=skip (the default): each bad field is dropped and counted, the rest is kept
    assert ds.report["bad_metadata_fields"] == 3
    assert ds.catalog.title == [None, "Good pen", None]
    assert ds.catalog.brand[0] == "Acme" and ds.catalog.categories == [["Office", "Pens"], [], []]
    assert ds.modalities["description"].raw == ["fine text"]
    assert "bad_metadata_fields=3" in caplog.text
    with pytest.raises(
        DataError,
        match=r"meta_Office\.json\.gz, item 'i1': field 'title' is an int \(12345\); it must be a string or "
        r"null\. .* Or set dataset\.reader\.on_bad_line=skip to drop such fields\.",
    ):
        AmazonRawReader("Office", k_core=1, on_bad_line="fail").read(tmp_path, "office")


def test_missing_and_ambiguous_files(tmp_path):
    with pytest.raises(DataError, match=r"missing file .*/Office_5\.json\.gz .*reviews_Office_5"):
        AmazonRawReader("Office").read(tmp_path, "office")
    _write_gz(tmp_path / "reviews_Office_5.json.gz", [{"reviewerID": "A", "asin": "i1"}])
    with pytest.raises(DataError, match=r"missing file .*meta_Office\.json\.gz"):
        AmazonRawReader("Office").read(tmp_path, "office")
    with pytest.raises(DataError, match=r"missing file .*/Office_5\.json\.gz"):
        AmazonRawReader("Office", release="2018").read(tmp_path, "office")
    _write_gz(tmp_path / "Office_5.json.gz", [{"reviewerID": "A", "asin": "i1"}])
    with pytest.raises(DataError, match="both releases"):
        AmazonRawReader("Office").read(tmp_path, "office")
    (tmp_path / "meta_Office.json.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"meta_Office\.json\.gz: not a readable gzip file"):
        AmazonRawReader("Office", release="2014", k_core=1).read(tmp_path, "office")


@pytest.mark.parametrize("kwargs", [{"release": "2020"}, {"on_bad_line": "warn"}, {"k_core": 0}])
def test_bad_options(kwargs):
    with pytest.raises(DataError, match="dataset.reader"):
        AmazonRawReader("Office", **kwargs)

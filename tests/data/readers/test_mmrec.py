import numpy as np
import pytest

from emmkgr_pyg.data.dataset import DataError
from emmkgr_pyg.data.readers import LcRecJsonReader
from emmkgr_pyg.data.readers.mmrec import MMRecReader, write_mmrec


def _same(a, b):
    assert a.user_ids == b.user_ids and a.catalog.item_ids == b.catalog.item_ids
    for f in ("user", "item", "split"):
        np.testing.assert_array_equal(getattr(a.interactions, f), getattr(b.interactions, f))
    assert a.catalog.title == b.catalog.title and a.catalog.brand == b.catalog.brand
    assert a.catalog.categories == b.catalog.categories
    assert list(a.modalities) == list(b.modalities)
    for m in a.modalities:
        ma, mb = a.modalities[m], b.modalities[m]
        assert ma.kind == mb.kind and ma.raw == mb.raw
        np.testing.assert_array_equal(ma.item_index, mb.item_index)
        if ma.features is None:
            assert mb.features is None
        else:
            np.testing.assert_array_equal(ma.features, mb.features)


def test_round_trip_changes_nothing(shared, tmp_path):
    ds = LcRecJsonReader("Office").read(shared("amazon-office-2014"), "office")
    rng = np.random.default_rng(0)
    for name, mod in list(ds.modalities.items()):  # give two modalities features, keep one raw
        if name != "attributes":
            ds.catalog.modalities[name] = mod.with_features(rng.normal(size=(mod.n_items_with, 8)))
    write_mmrec(ds, tmp_path)
    back = MMRecReader().read(tmp_path, "office")
    _same(ds, back)
    # the .inter file is MMRec's: header and x_label
    header = (tmp_path / "office.inter").read_text().splitlines()[0]
    assert header == "userID\titemID\trating\ttimestamp\tx_label"
    # items without a description get MMRec's mean row in the plain feature file
    dense = np.load(tmp_path / "description_feat.npy")
    missing = np.setdiff1d(np.arange(ds.n_items), ds.modalities["description"].item_index)
    np.testing.assert_allclose(dense[missing[0]], ds.modalities["description"].features.mean(0), rtol=1e-5)


def _minimal(tmp_path, rows=4, x_label=(0, 0, 2, 2)):
    lines = ["userID\titemID\tx_label"] + [
        f"{u}\t{i}\t{s}" for u, i, s in zip((0, 0, 1, 1), (0, 1, 2, 3), x_label)
    ]
    (tmp_path / "toy.inter").write_text("\n".join(lines) + "\n")
    np.save(tmp_path / "image_feat.npy", np.ones((rows, 3), dtype=np.float32))


def test_plain_mmrec_folder(tmp_path):
    _minimal(tmp_path)
    ds = MMRecReader().read(tmp_path, "toy")
    assert ds.n_items == 4 and ds.modalities["image"].n_items_with == 4
    assert ds.split_counts() == {"train": 2, "valid": 0, "test": 2}


def test_feature_rows_must_match_items(tmp_path):
    _minimal(tmp_path, rows=3)
    with pytest.raises(DataError, match=r"image_feat.npy: 3 rows, expected 4"):
        MMRecReader().read(tmp_path, "toy")


def test_bad_inter_files(tmp_path):
    with pytest.raises(DataError, match=r"missing file .*toy.inter"):
        MMRecReader().read(tmp_path, "toy")
    _minimal(tmp_path, x_label=(0, 0, 2, 5))
    with pytest.raises(DataError, match="x_label must be 0 .* has 5"):
        MMRecReader().read(tmp_path, "toy")
    (tmp_path / "toy.inter").write_text("user\titem\n0\t1\n")
    with pytest.raises(DataError, match=r"lacks \['userID', 'itemID', 'x_label'\]"):
        MMRecReader().read(tmp_path, "toy")
    _minimal(tmp_path, x_label=(0, 0, 0, 0))
    with pytest.raises(DataError, match="no test interaction"):
        MMRecReader().read(tmp_path, "toy")


def test_empty_inter_files(tmp_path):
    _minimal(tmp_path)
    (tmp_path / "toy.inter").write_text("")
    with pytest.raises(DataError, match=r"toy\.inter: the file is empty\. The MMRec \.inter file is"):
        MMRecReader().read(tmp_path, "toy")
    (tmp_path / "toy.inter").write_text("userID\titemID\tx_label\n\n")
    with pytest.raises(DataError, match=r"toy\.inter: a header and no interaction; export the interactions"):
        MMRecReader().read(tmp_path, "toy")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"image_feat\.npy: not a readable \.npy file of features \(EOFError: .*\); it is empty"),
        (b"\x93NUMPY garbage", r"image_feat\.npy: not a readable \.npy file of features \(ValueError"),
    ],
    ids=["empty", "garbage"],
)
def test_unreadable_feature_files_are_named(tmp_path, content, message):
    _minimal(tmp_path)
    (tmp_path / "image_feat.npy").write_bytes(content)
    with pytest.raises(DataError, match=message):
        MMRecReader().read(tmp_path, "toy")


def test_feature_files_must_be_2d_and_finite(tmp_path):
    _minimal(tmp_path)
    np.save(tmp_path / "image_feat.npy", np.ones(4, dtype=np.float32))
    with pytest.raises(DataError, match=r"image_feat\.npy: an array of shape \(4,\); features must be 2-D"):
        MMRecReader().read(tmp_path, "toy")
    feats = np.ones((4, 3), dtype=np.float32)
    feats[2, 1] = np.nan
    np.save(tmp_path / "image_feat.npy", feats)
    # the message names the .npy file, not the .inter file
    with pytest.raises(
        DataError, match=r"image_feat\.npy: NaN or inf features in 1 rows \(first: row 2, item '2'\)"
    ):
        MMRecReader().read(tmp_path, "toy")
    np.save(tmp_path / "image_items.npy", np.array([0, 1, 3]))  # item 2 lacks the modality: its row is unused
    assert MMRecReader().read(tmp_path, "toy").modalities["image"].n_items_with == 3


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (b"", r"image_items\.npy: not a readable \.npy file of item indices \(EOFError"),
        (
            np.array([[0, 1]]),
            r"image_items\.npy: an array of shape \(1, 2\) and dtype int64; it must be a 1-D",
        ),
        (np.array([0.0, 1.0]), r"it must be a 1-D integer array"),
        (np.array([0, 9]), r"image_items\.npy: itemIDs must be sorted, distinct and in 0\.\.3"),
        (np.array([1, 1]), r"itemIDs must be sorted, distinct"),
    ],
    ids=["empty", "2-d", "float", "out-of-range", "repeated"],
)
def test_bad_item_index_files(tmp_path, items, message):
    _minimal(tmp_path)
    if isinstance(items, bytes):
        (tmp_path / "image_items.npy").write_bytes(items)
    else:
        np.save(tmp_path / "image_items.npy", items)
    with pytest.raises(DataError, match=message):
        MMRecReader().read(tmp_path, "toy")


def _meta(tmp_path, *rows: str):
    _minimal(tmp_path)
    (tmp_path / "item_meta.jsonl").write_text('{"modality_kinds": {}}\n' + "".join(r + "\n" for r in rows))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            '{"item": 1, "title": 42}',
            r"line 3, item 1: field 'title' is an int \(42\); it must be a string or null",
        ),
        (
            '{"item": 1, "categories": 7}',
            r"line 3, item 1: field 'categories' is an int \(7\); it must be a list of strings",
        ),
        (
            '{"item": 1, "title": "ink \\ud83d toner"}',
            r"line 3, item 1: field 'title' holds a lone surrogate \\ud83d at "
            r"character 4",
        ),
        ('{"item": 1, "title": "x"', r"item_meta\.jsonl, line 3: not a JSON object \("),
        ("[1, 2]", r"item_meta\.jsonl, line 3: a JSON list, not an object"),
        ('{"item": 7}', r"item_meta\.jsonl, line 3: 'item' is 7; it must be an itemID in 0\.\.3"),
        ('{"item": 0, "raw": {"title": ["a"]}}', r"line 3, item 0: field 'raw\.title' is a list"),
    ],
    ids=[
        "numeric-title",
        "numeric-categories",
        "lone-surrogate",
        "cut-line",
        "not-object",
        "bad-item",
        "raw-list",
    ],
)
def test_bad_item_meta_lines_name_file_line_and_item(tmp_path, row, message):
    _meta(tmp_path, '{"item": 0, "title": "fine"}', row)
    with pytest.raises(DataError, match=message) as err:
        MMRecReader().read(tmp_path, "toy")
    assert str(tmp_path / "item_meta.jsonl") in str(err.value)


def test_item_meta_that_is_not_utf8(tmp_path):
    _meta(tmp_path)
    with open(tmp_path / "item_meta.jsonl", "ab") as f:
        f.write(b'{"item": 0, "title": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"item_meta\.jsonl, line 2: not UTF-8 \(byte 0xe9\)"):
        MMRecReader().read(tmp_path, "toy")

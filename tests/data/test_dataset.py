import numpy as np
import pytest

from emmkgr_pyg.data.dataset import (
    TEST,
    TRAIN,
    Catalog,
    DataError,
    Interactions,
    MMDataset,
    Modality,
    drop_duplicate_interactions,
)


def _catalog(n=4, **mods):
    return Catalog(
        [f"i{i}" for i in range(n)],
        [f"t{i}" for i in range(n)],
        [None] * n,
        [[] for _ in range(n)],
        modalities=mods,
    )


def _dataset(item=(0, 1, 2, 3), split=(TRAIN, TRAIN, TEST, TEST), **mods):
    inter = Interactions(np.array([0, 0, 1, 1]), np.array(item), np.array(split))
    return MMDataset("toy", ["u0", "u1"], inter, _catalog(**mods))


def test_modality_keeps_missing_items_missing():
    m = Modality("description", "text", [0, 2], raw=["a", "b"])
    assert m.n_items_with == 2 and m.dim is None
    f = m.with_features(np.array([[1.0, 0.0], [3.0, 2.0]]))
    dense = f.dense_features(4, fill="mean")
    np.testing.assert_allclose(dense[[0, 2]], [[1, 0], [3, 2]])
    np.testing.assert_allclose(dense[[1, 3]], [[2, 1], [2, 1]])  # MMRec's mean fill, export only


def test_modality_features_are_float32_unless_float16():
    feats = np.array([[1.0, 0.5], [0.25, 2.0]])
    assert Modality("image", "feature", [0, 1], features=feats).features.dtype == np.float32
    half = Modality("image", "feature", [0, 1], features=feats.astype(np.float16)).features
    assert half.dtype == np.float16  # kept: half the memory for catalogues of millions
    np.testing.assert_array_equal(half, feats)


def test_modality_shape_errors():
    with pytest.raises(DataError, match="2 raw entries for 3 items"):
        Modality("title", "text", [0, 1, 2], raw=["a", "b"])
    with pytest.raises(DataError, match=r"expected \[2, dim\]"):
        Modality("image", "feature", [0, 1], features=np.zeros((3, 4)))
    with pytest.raises(DataError, match="kind 'video'"):
        Modality("clip", "video", [0])
    with pytest.raises(DataError, match="names item index 7"):
        _catalog(title=Modality("title", "text", [7], raw=["x"]))


def test_validate_names_the_problem():
    with pytest.raises(DataError, match="interactions name unknown items"):
        _dataset(item=(0, 1, 2, 9)).validate("toy.inter")
    bad = Modality("image", "feature", [0, 1], features=np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(DataError, match="NaN or inf features in 1 rows"):
        _dataset(image=bad).validate()
    with pytest.raises(DataError, match="no test interaction"):
        _dataset(split=(TRAIN, TRAIN, TRAIN, TRAIN)).validate()


def test_stats_and_duplicates():
    ds = _dataset(title=Modality("title", "text", [0, 1, 2, 3], raw=list("abcd")))
    s = ds.stats()
    assert s["n_users"] == 2 and s["n_items"] == 4 and s["splits"] == {"train": 2, "valid": 0, "test": 2}
    assert s["modalities"]["title"] == {"kind": "text", "dim": None, "n_items_with": 4}
    keep, n = drop_duplicate_interactions(np.array([0, 0, 1, 0]), np.array([1, 1, 1, 2]))
    assert n == 1 and keep.tolist() == [True, False, True, True]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", 7, r"Catalog item 'i2': field 'title' is an int \(7\); it must be a string or null"),
        ("brand", ["x"], r"Catalog item 'i2': field 'brand' is a list"),
        (
            "categories",
            "Office",
            r"Catalog item 'i2': field 'categories' is a str \('Office'\); it must be a list",
        ),
        ("image_urls", [None], r"Catalog item 'i2': field 'image_urls' is a list"),
        (
            "title",
            "a\udc80b",
            r"Catalog item 'i2': field 'title' holds a lone surrogate \\udc80 at character 1",
        ),
    ],
)
def test_catalog_checks_field_types_per_item(field, value, message):
    n = 4
    fields = {
        "title": [f"t{i}" for i in range(n)],
        "brand": [None] * n,
        "categories": [[] for _ in range(n)],
        "image_urls": [[] for _ in range(n)],
    }
    fields[field][2] = value
    with pytest.raises(DataError, match=message):
        Catalog([f"i{i}" for i in range(n)], **fields)
    with pytest.raises(DataError, match=r"Catalog: item index 1 has id 5 \(int\); item ids must be strings"):
        Catalog(["i0", 5], [None] * 2, [None] * 2, [[], []])

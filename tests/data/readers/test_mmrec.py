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

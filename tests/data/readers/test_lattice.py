import csv
import json

import numpy as np
import pytest

from emmkgr_pyg.data.dataset import TEST, TRAIN, VALID, DataError
from emmkgr_pyg.data.readers import LatticeReader


def test_baby_lattice_split(shared):
    root = shared("amazon-baby-2014")
    ds = LatticeReader(url_file="mmrec_format/baby_url.csv").read(root, "amazon_baby")
    s = ds.stats()
    assert (s["n_users"], s["n_items"], s["n_interactions"]) == (19445, 7050, 160792)
    assert s["splits"] == {"train": 119674, "valid": 20559, "test": 20559}  # PROVENANCE.txt
    assert s["modalities"] == {}
    item2id = json.loads((root / "lattice_format/item2id.json").read_text())
    user2id = json.loads((root / "lattice_format/user2id.json").read_text())
    assert all(ds.catalog.item_ids[i] == a for a, i in item2id.items())
    assert all(ds.user_ids[u] == r for r, u in user2id.items())
    assert set(ds.catalog.title) == {None} and set(ds.catalog.brand) == {None}
    assert not any(ds.catalog.categories)
    assert sum(bool(u) for u in ds.catalog.image_urls) == 7037  # 13 rows have no imUrl
    assert ds.report["items_without_image_url"] == 13
    with open(root / "mmrec_format/baby_url.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert ds.catalog.image_urls[item2id[row["asin"]]] == [row["imUrl"]]
    test = json.loads((root / "lattice_format/5-core/test.json").read_text())
    user, item = ds.interactions.part(TEST)
    assert sorted(zip(user.tolist(), item.tolist(), strict=True)) == sorted(
        (int(u), i) for u, its in test.items() for i in its
    )

    mm = LatticeReader(resplit=True).read(root, "amazon_baby")
    assert len(mm.interactions) == 160792
    assert mm.split_counts() == {"train": 118551, "valid": 20559, "test": 21682}
    assert mm.report["split"] == "mmrec protocol, seed 999"
    assert mm.catalog.image_urls[0] == []  # no url_file given


def _write_lattice(root, splits, items=("a0", "a1", "a2"), users=("u0", "u1")):
    (root / "lat/5-core").mkdir(parents=True)
    for name, data in splits.items():
        (root / f"lat/5-core/{name}.json").write_text(json.dumps(data))
    # reversed on purpose: the maps are read by index, not by key order
    (root / "lat/item2id.json").write_text(json.dumps({a: i for i, a in reversed(list(enumerate(items)))}))
    (root / "lat/user2id.json").write_text(json.dumps({u: i for i, u in enumerate(users)}))


def test_tiny_folder(tmp_path):
    _write_lattice(
        tmp_path,
        {
            "train": {"0": [0, 1, 2], "1": [2]},
            "val": {"0": [], "1": [0]},
            "test": {"0": [0], "1": [1]},  # (0, 0) repeats a training pair: dropped, counted
        },
    )
    (tmp_path / "urls.csv").write_text("itemID,asin,imUrl\n0,a0,http://x/a0.jpg\n2,a2,\n9,zz,u\n")
    ds = LatticeReader(subdir="lat", url_file="urls.csv").read(tmp_path, "tiny")
    assert ds.catalog.item_ids == ["a0", "a1", "a2"] and ds.user_ids == ["u0", "u1"]
    inter = ds.interactions
    assert inter.user.tolist() == [0, 0, 0, 1, 1, 1]
    assert inter.item.tolist() == [0, 1, 2, 2, 0, 1]
    assert inter.split.tolist() == [TRAIN, TRAIN, TRAIN, TRAIN, VALID, TEST]
    assert ds.report["duplicate_interactions_dropped"] == 1
    assert ds.catalog.image_urls == [["http://x/a0.jpg"], [], []]
    assert ds.report["url_rows_unknown_asin"] == 1
    resplit = LatticeReader(subdir="lat", resplit=True, split_seed=1).read(tmp_path, "tiny")
    assert np.array_equal(resplit.interactions.item, inter.item)
    assert resplit.split_counts() == {"train": 2, "valid": 2, "test": 2}


def test_errors_name_file_and_fix(tmp_path):
    with pytest.raises(DataError, match=r"missing file .*lattice_format/5-core/train\.json"):
        LatticeReader().read(tmp_path, "x")
    _write_lattice(tmp_path, {"train": {"0": [0, 5]}, "val": {}, "test": {}})
    with pytest.raises(DataError, match=r"train\.json: 1 item indices outside 0\.\.2, .*item2id"):
        LatticeReader(subdir="lat").read(tmp_path, "x")
    (tmp_path / "lat/item2id.json").write_text(json.dumps({"a0": 0, "a1": 2}))
    with pytest.raises(DataError, match=r"item2id\.json: the indices are not 0\.\.1"):
        LatticeReader(subdir="lat").read(tmp_path, "x")
    (tmp_path / "lat/item2id.json").write_text(json.dumps({"a0": 0, "a1": 1, "a2": 2}))
    (tmp_path / "lat/5-core/train.json").write_text(json.dumps({"0": [0, 1]}))
    with pytest.raises(DataError, match=r"missing file .*nope\.csv"):
        LatticeReader(subdir="lat", url_file="nope.csv").read(tmp_path, "x")
    (tmp_path / "u.csv").write_text("itemID,asin,url\n")
    with pytest.raises(DataError, match=r"u\.csv: no column imUrl"):
        LatticeReader(subdir="lat", url_file="u.csv").read(tmp_path, "x")

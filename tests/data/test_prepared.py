import json

import numpy as np
import pytest

from emmkgr_pyg.data.dataset import DataError
from emmkgr_pyg.data.prepared import load_dataset, load_prepared, prepare_dataset, save_prepared

HASHING = {
    "text_encoder": {"_target_": "emmkgr_pyg.data.encoders.HashingTextEncoder", "dim": 32},
    "image_encoder": None,
    "include": None,
    "exclude": [],
    "extra": {},
}


def _office_cfg(root):
    return {
        "name": "office",
        "root": str(root),
        "reader": {"_target_": "emmkgr_pyg.data.readers.LcRecJsonReader", "stem": "Office"},
    }


def test_prepare_save_load(shared, tmp_path):
    ds, record = prepare_dataset(
        _office_cfg(shared("amazon-office-2014")), HASHING, tmp_path / "cache", progress=False
    )
    assert set(record["encode"]) == {"title", "description", "attributes"}
    out = save_prepared(ds, tmp_path / "prep", record)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["n_items"] == 2420 and stats["modalities"]["description"] == {
        "kind": "text",
        "dim": 32,
        "n_items_with": 1781,
    }
    back = load_prepared(out)
    assert list(back.modalities) == ["title", "description", "attributes"]
    np.testing.assert_array_equal(
        back.modalities["description"].features, ds.modalities["description"].features
    )
    np.testing.assert_array_equal(back.interactions.split, ds.interactions.split)


def test_failed_write_keeps_the_old_folder(shared, tmp_path, monkeypatch):
    ds, record = prepare_dataset(_office_cfg(shared("amazon-office-2014")), HASHING, None, progress=False)
    out = save_prepared(ds, tmp_path / "prep", record)
    before = sorted(p.name for p in out.iterdir())

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("emmkgr_pyg.data.prepared.write_mmrec", boom)
    with pytest.raises(OSError, match="disk full"):
        save_prepared(ds, out, record)
    assert sorted(p.name for p in out.iterdir()) == before
    assert load_prepared(out).n_items == 2420
    # no temporary or old folder is left; the lock file that serialises writers stays
    assert sorted(p.name for p in tmp_path.iterdir()) == [".prep.lock", "prep"]


def test_errors(tmp_path):
    with pytest.raises(DataError, match="not a prepared dataset"):
        load_prepared(tmp_path)
    with pytest.raises(DataError, match="needs 'name' and 'reader'"):
        load_dataset({"root": "x"})

import json

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
)
from emmkgr_pyg.data.encoders import HashingTextEncoder
from emmkgr_pyg.data.features import FeatureCache, encode_dataset, resolve_modalities

HASH = {"_target_": "emmkgr_pyg.data.encoders.HashingTextEncoder", "dim": 16}


def _dataset():
    n = 5
    mods = {
        "title": Modality("title", "text", range(n), raw=[f"item {i} red" for i in range(n)]),
        "description": Modality("description", "text", [0, 3], raw=["long text", "other text"]),
        "image": Modality("image", "feature", [0, 1, 2, 3], features=np.eye(4, 6, dtype=np.float32)),
    }
    cat = Catalog(
        [f"i{i}" for i in range(n)], [None] * n, [None] * n, [[] for _ in range(n)], modalities=mods
    )
    inter = Interactions(np.array([0, 0, 1, 1]), np.array([0, 1, 2, 3]), np.array([TRAIN, TEST, TRAIN, TEST]))
    return MMDataset("toy", ["a", "b"], inter, cat)


def _cfg(**kw):
    return {
        "text_encoder": HASH,
        "image_encoder": None,
        "include": None,
        "exclude": [],
        "extra": {},
        **kw,
    }


def test_resolve_and_encode_keeps_missing_modalities_missing():
    ds = _dataset()
    specs = resolve_modalities(ds, _cfg())
    assert [s.name for s in specs] == ["title", "description", "image"]
    out, rec = encode_dataset(ds, specs, progress=False)
    assert out.modalities["description"].features.shape == (2, 16)
    np.testing.assert_array_equal(out.modalities["description"].item_index, [0, 3])
    np.testing.assert_array_equal(out.modalities["image"].features, ds.modalities["image"].features)
    assert rec["title"]["dim"] == 16


def test_include_exclude_and_unknown_names():
    ds = _dataset()
    assert [s.name for s in resolve_modalities(ds, _cfg(exclude=["title"]))] == [
        "description",
        "image",
    ]
    assert [s.name for s in resolve_modalities(ds, _cfg(include=["image"]))] == ["image"]
    with pytest.raises(DataError, match=r"names \['review'\], which dataset 'toy' does not have"):
        resolve_modalities(ds, _cfg(exclude=["review"]))
    with pytest.raises(DataError, match="no text encoder is configured"):
        resolve_modalities(ds, _cfg(text_encoder=None))


def test_extra_modality_from_files_and_from_a_modality(tmp_path):
    ds = _dataset()
    feats = np.full((5, 3), np.nan, dtype=np.float32)
    feats[[1, 4]] = 1.0
    np.save(tmp_path / "caption.npy", feats)
    (tmp_path / "summary.json").write_text(json.dumps({"i2": "a summary", "i0": "another"}))
    extra = {
        "caption": {"source": str(tmp_path / "caption.npy")},
        "summary": {"source": str(tmp_path / "summary.json")},
        "title_wide": {"source": "title", "encoder": {**HASH, "dim": 32}},
    }
    specs = resolve_modalities(ds, _cfg(extra=extra))
    out, _ = encode_dataset(ds, specs, progress=False)
    np.testing.assert_array_equal(out.modalities["caption"].item_index, [1, 4])
    np.testing.assert_array_equal(out.modalities["summary"].item_index, [0, 2])
    assert out.modalities["title_wide"].features.shape == (5, 32)
    np.save(tmp_path / "short.npy", np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"short.npy: 3 rows, expected 5"):
        resolve_modalities(ds, _cfg(extra={"x": {"source": str(tmp_path / "short.npy")}}))
    (tmp_path / "bad.json").write_text(json.dumps({"nope": "text"}))
    with pytest.raises(DataError, match="not item ids of 'toy'"):
        resolve_modalities(ds, _cfg(extra={"x": {"source": str(tmp_path / "bad.json")}}))


def test_extra_feature_files_that_cannot_be_used_are_named(tmp_path):
    ds = _dataset()
    path = tmp_path / "caption.npy"
    extra = {"caption": {"source": str(path)}}
    np.save(path, np.ones(5))
    with pytest.raises(DataError, match=r"caption\.npy: an array of shape \(5,\); features must be 2-D"):
        resolve_modalities(ds, _cfg(extra=extra))
    feats = np.ones((5, 2))
    feats[3] = [np.nan, 1.0]  # half NaN: neither a feature row nor the "missing" mark
    np.save(path, feats)
    with pytest.raises(
        DataError, match=r"caption\.npy: NaN or inf in 1 rows that are not all NaN \(first: row 3\)"
    ):
        resolve_modalities(ds, _cfg(extra=extra))
    for content in (b"", b"garbage"):
        path.write_bytes(content)
        with pytest.raises(
            DataError, match=r"caption\.npy: not a readable \.npy file of features of modality 'caption'"
        ):
            resolve_modalities(ds, _cfg(extra=extra))


def test_extra_text_modality_joined_from_several_fields():
    """MMRec's text input (title + brand + categories + description) is a config entry."""
    ds = _dataset()
    extra = {
        "text": {"source": ["title", "description"]},
        "dash": {"source": ["description", "title"], "sep": " - "},
    }
    specs = resolve_modalities(ds, _cfg(include=["text", "title", "dash"], extra=extra))
    assert [s.name for s in specs] == ["text", "title", "dash"]
    joined = {s.name: s.modality for s in specs}
    assert joined["text"].kind == "text"
    np.testing.assert_array_equal(joined["text"].item_index, range(5))
    assert joined["text"].raw == [
        "item 0 red long text",
        "item 1 red",
        "item 2 red",
        "item 3 red other text",
        "item 4 red",
    ]
    assert joined["dash"].raw[0] == "long text - item 0 red" and joined["dash"].raw[1] == "item 1 red"
    out, _ = encode_dataset(ds, specs, progress=False)
    assert out.modalities["text"].features.shape == (5, 16)
    assert not np.allclose(out.modalities["text"].features[0], out.modalities["title"].features[0])
    np.testing.assert_allclose(out.modalities["text"].features[1], out.modalities["title"].features[1])
    with pytest.raises(DataError, match=r"\['image'\] are not text modalities of dataset 'toy'"):
        resolve_modalities(ds, _cfg(extra={"x": {"source": ["title", "image"]}}))


class CountingEncoder(HashingTextEncoder):
    """Counts its own encode calls (per instance: no state shared between tests)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def encode(self, raw, progress=True, desc=""):
        self.calls += 1
        return super().encode(raw, progress=False)


def test_cache_reuses_and_distrusts_half_written_entries(tmp_path):
    ds = _dataset()
    enc = CountingEncoder(dim=16)
    cfg = _cfg(text_encoder=enc, include=["title"])
    cache = FeatureCache(tmp_path)
    first, rec1 = encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    second, rec2 = encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    assert enc.calls == 1 and rec1["title"]["cache_hit"] is False and rec2["title"]["cache_hit"]
    np.testing.assert_array_equal(first.modalities["title"].features, second.modalities["title"].features)
    # an entry whose manifest is missing (interrupted between the two writes) is not trusted
    for manifest in tmp_path.rglob("*.json"):
        manifest.unlink()
    encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    assert enc.calls == 2
    # a truncated feature file is not trusted either
    npy = next(tmp_path.rglob("*.npy"))
    npy.write_bytes(npy.read_bytes()[:40])
    encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    assert enc.calls == 3
    # changed inputs give another key
    ds.modalities["title"].raw[0] = "changed"
    encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    assert enc.calls == 4
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"",  # a zero-byte file (np.load: EOFError)
        lambda b: b"not an npy file at all",
        lambda b: b[:-4] + np.float32(7.0).tobytes(),  # same shape, other values: only a checksum tells
    ],
    ids=["empty", "garbage", "overwritten"],
)
def test_cache_rebuilds_unreadable_or_overwritten_entries(tmp_path, caplog, damage):
    ds = _dataset()
    enc = CountingEncoder(dim=16)
    cfg = _cfg(text_encoder=enc, include=["title"])
    cache = FeatureCache(tmp_path)
    first, _ = encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    npy = next(tmp_path.rglob("*.npy"))
    manifest = json.loads(npy.with_suffix(".json").read_text())
    assert len(manifest["sha256"]) == 64
    npy.write_bytes(damage(npy.read_bytes()))
    again, rec = encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    assert enc.calls == 2 and rec["title"]["cache_hit"] is False
    assert (
        f"cache entry {npy} unreadable (ValueError: its checksum does not match the manifest)" in caplog.text
    )
    np.testing.assert_array_equal(again.modalities["title"].features, first.modalities["title"].features)
    # the rebuilt entry is trusted again
    encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    assert enc.calls == 2


def test_chunked_float16_encoding_matches_one_shot_float32():
    ds = _dataset()
    specs = resolve_modalities(ds, _cfg())
    dense, _ = encode_dataset(ds, specs, progress=False)
    chunked, _ = encode_dataset(ds, specs, progress=False, chunk_rows=2)
    half, _ = encode_dataset(ds, specs, progress=False, dtype=np.float16, chunk_rows=2)
    for m, mod in dense.modalities.items():
        assert mod.features.dtype == np.float32 and half.modalities[m].features.dtype == np.float16
        np.testing.assert_array_equal(chunked.modalities[m].features, mod.features)
        np.testing.assert_allclose(half.modalities[m].features, mod.features, atol=1e-3)
    with pytest.raises(ValueError, match="dtype must be float32 or float16"):
        encode_dataset(ds, specs, progress=False, dtype=np.float64)


def test_float16_features_are_cached_apart_from_float32(tmp_path):
    ds = _dataset()
    enc = CountingEncoder(dim=16)
    cfg = _cfg(text_encoder=enc, include=["title"])
    cache = FeatureCache(tmp_path)
    encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    half, rec = encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False, dtype=np.float16)
    again, rec2 = encode_dataset(ds, resolve_modalities(ds, cfg), cache=cache, progress=False)
    assert enc.calls == 2 and rec["title"]["cache_hit"] is False
    assert rec2["title"]["cache_hit"] and again.modalities["title"].features.dtype == np.float32
    assert half.modalities["title"].features.dtype == np.float16

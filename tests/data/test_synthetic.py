"""The synthetic default dataset: deterministic, sized as asked, split without leakage, and with
side information that carries signal (content beats popularity; a colour query finds the colour)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.feature_extraction.text import TfidfVectorizer

from emmkgr_pyg.data.dataset import TEST, TRAIN, MMDataset
from emmkgr_pyg.data.synthetic import COLOURS, SyntheticReader

CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"
TINY = {"n_users": 200, "n_items": 150, "n_interactions": 2000, "image_dim": 32}
MEDIUM = {"n_users": 1000, "n_items": 800, "n_interactions": 10000, "image_dim": 64}


def _read_config(name: str) -> tuple[dict, MMDataset]:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    reader = instantiate(cfg.reader)
    assert isinstance(reader, SyntheticReader)
    return OmegaConf.to_container(cfg.reader), reader.read(cfg.root, cfg.name)


@pytest.fixture(scope="module")
def medium() -> tuple[SyntheticReader, MMDataset]:
    reader = SyntheticReader(**MEDIUM)
    return reader, reader.read(None, "synthetic_medium")


def _same(a: MMDataset, b: MMDataset) -> bool:
    ia, ib = a.interactions, b.interactions
    if not all(np.array_equal(getattr(ia, f), getattr(ib, f)) for f in ("user", "item", "split", "rating")):
        return False
    if (a.catalog.title, a.catalog.brand, a.catalog.categories) != (
        b.catalog.title,
        b.catalog.brand,
        b.catalog.categories,
    ):
        return False
    for name, m in a.modalities.items():
        n = b.modalities[name]
        if not np.array_equal(m.item_index, n.item_index) or m.raw != n.raw:
            return False
        if (m.features is None) != (n.features is None):
            return False
        if m.features is not None and not np.array_equal(m.features, n.features):
            return False
    return a.user_ids == b.user_ids and a.catalog.item_ids == b.catalog.item_ids


def test_same_seed_same_dataset_other_seed_other_dataset():
    a = SyntheticReader(**TINY).read(None, "a")
    b = SyntheticReader(**TINY).read(None, "b")
    c = SyntheticReader(**TINY, seed=1).read(None, "c")
    assert _same(a, b)
    assert not _same(a, c)
    assert a.catalog.title != c.catalog.title
    image_a, image_c = a.modalities["image"].features, c.modalities["image"].features
    assert not np.array_equal(image_a[:5], image_c[:5])
    d = SyntheticReader(**TINY, split_seed=1).read(None, "d")
    assert a.catalog.title == d.catalog.title
    assert not np.array_equal(a.interactions.split, d.interactions.split)


@pytest.mark.parametrize("config", ["synthetic_tiny", "synthetic"])
def test_configs_give_the_requested_sizes(config):
    settings, ds = _read_config(config)
    assert ds.name == config
    assert ds.n_users == settings["n_users"]
    assert ds.n_items == settings["n_items"]
    n_interactions = settings["n_interactions"]
    assert abs(len(ds.interactions) - n_interactions) <= 0.1 * n_interactions
    assert ds.modalities["image"].dim == settings["image_dim"]
    assert ds.report["seed"] == settings["seed"]
    assert ds.report["settings"]["n_users"] == settings["n_users"]
    assert ds.report["duplicate_interactions_dropped"] == 0
    counts = np.bincount(ds.interactions.user, minlength=ds.n_users)
    assert counts.min() >= 5
    assert counts.max() >= 4 * np.median(counts)  # a long tail of active users
    test_users = np.unique(ds.interactions.user[ds.interactions.split == TEST])
    assert len(test_users) == ds.n_users
    item_counts = np.bincount(ds.interactions.item, minlength=ds.n_items)
    assert item_counts.max() >= 3 * np.median(item_counts)  # popular items


def test_catalogue_and_missing_modalities(medium):
    _, ds = medium
    cat = ds.catalog
    assert cat.item_ids[3] == "SYN-000003"
    assert all(len(path) == 3 for path in cat.categories)
    assert all(t.startswith(b) for t, b in zip(cat.title, cat.brand, strict=True))
    assert all(not urls for urls in cat.image_urls)
    assert set(ds.modalities) == {"title", "description", "review", "image"}
    assert ds.modalities["title"].n_items_with == ds.n_items
    assert ds.modalities["title"].raw == cat.title
    rates = {"description": 0.2, "image": 0.05}
    for name, m in ds.modalities.items():
        idx = m.item_index
        assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < ds.n_items
        if m.kind == "text":
            assert m.features is None and len(m.raw) == len(idx) and all(m.raw)
        else:
            assert m.raw is None and m.features.shape == (len(idx), m.dim)
            assert m.features.dtype == np.float32 and np.isfinite(m.features).all()
        if name in rates:
            assert abs(1 - m.n_items_with / ds.n_items - rates[name]) < 0.05
    assert ds.modalities["review"].n_items_with < ds.n_items


def test_review_modality_uses_training_interactions_only(medium):
    reader, ds = medium
    world = reader.generate()
    inter = ds.interactions
    assert np.array_equal(world.user, inter.user) and np.array_equal(world.item, inter.item)
    assert np.array_equal(world.split, inter.split)
    review = ds.modalities["review"]
    train = inter.split == TRAIN
    n_train = np.bincount(inter.item[train], minlength=ds.n_items)
    assert np.array_equal(review.item_index, np.flatnonzero(n_train))
    cap = reader.options.max_reviews_per_item
    for i, text in zip(review.item_index, review.raw, strict=True):
        snippets = world.review[train & (inter.item == i)]
        assert text == " ".join(snippets[:cap])
        assert text.count(".") == min(cap, n_train[i])  # one sentence per training review
    held_out_only = np.setdiff1d(inter.item[~train], review.item_index)
    assert len(held_out_only) > 0  # items reviewed only in valid/test exist, and lack the modality


def test_a_colour_query_finds_items_of_that_colour(medium):
    reader, ds = medium
    colour = reader.generate().items.colour
    description = ds.modalities["description"]
    desc = dict(zip(description.item_index, description.raw, strict=True))
    words = [
        set(re.findall(r"[a-z]+", f"{ds.catalog.title[i]} {desc.get(i, '')}".lower()))
        for i in range(ds.n_items)
    ]
    for name in ("red", "navy"):
        hit = np.array([name in w for w in words])
        truth = colour == COLOURS.index(name.title())
        assert (hit & truth).sum() / hit.sum() >= 0.95  # precision
        assert (hit & truth).sum() / truth.sum() >= 0.75  # recall


def test_image_vectors_reflect_visual_attributes(medium):
    reader, ds = medium
    items = reader.generate().items
    image = ds.modalities["image"]
    f = image.features / np.linalg.norm(image.features, axis=1, keepdims=True)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(1)
    for attr in ("colour", "material", "shape", "style"):
        v = getattr(items, attr)[image.item_index]
        chance = float((np.bincount(v) ** 2).sum()) / len(v) ** 2
        assert (v[nearest] == v).mean() > 3 * chance, attr


def _recall_at_20(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix) -> float:
    scores = scores.astype(np.float64)
    scores[train.nonzero()] = -np.inf
    top = np.argpartition(-scores, 20, axis=1)[:, :20]
    hits = np.asarray(test[np.arange(test.shape[0])[:, None], top].sum(1)).ravel()
    n_test = np.asarray(test.sum(1)).ravel()
    return float((hits / n_test).mean())


def test_title_content_beats_popularity_and_random(medium):
    _, ds = medium
    inter = ds.interactions
    shape = (ds.n_users, ds.n_items)

    def matrix(split: int) -> sp.csr_matrix:
        u, i = inter.part(split)
        return sp.csr_matrix((np.ones(len(u)), (u, i)), shape=shape)

    train, test = matrix(TRAIN), matrix(TEST)
    titles = TfidfVectorizer().fit_transform(ds.catalog.title)  # rows L2-normalised
    profile = sp.csr_matrix(train.multiply(1 / train.sum(1))) @ titles
    content = _recall_at_20((profile @ titles.T).toarray(), train, test)
    popularity = _recall_at_20(np.broadcast_to(np.asarray(train.sum(0)), shape).copy(), train, test)
    random = _recall_at_20(np.random.default_rng(0).random(shape), train, test)
    assert content > 1.3 * popularity
    assert content > 4 * random


def _digest(ds: MMDataset, world) -> str:
    """SHA-256 of everything discrete the generator produced: ids, interactions, split, ratings,
    texts, category paths, which items have which modality and the hidden item attributes."""
    h = hashlib.sha256()
    inter = ds.interactions
    for a in (inter.user, inter.item, inter.split, inter.rating):
        h.update(np.ascontiguousarray(a).tobytes())
    for name in ("leaf", "brand", "colour", "material", "shape", "size", "style", "has_feature"):
        h.update(np.ascontiguousarray(getattr(world.items, name)).tobytes())
    texts = {name: m.raw for name, m in sorted(ds.modalities.items()) if m.raw is not None}
    index = {name: m.item_index.tolist() for name, m in sorted(ds.modalities.items())}
    blob = [ds.user_ids, ds.catalog.item_ids, ds.catalog.title, ds.catalog.brand, ds.catalog.categories]
    h.update(json.dumps([blob, texts, index, list(world.review)]).encode())
    return h.hexdigest()


# Pinned on main before the generator was split into modules: the same seed must keep giving the
# same shop. A change here is a change of the embedded default dataset (and of every figure on it).
PINNED = {
    "tiny": "13b97571df535f77f3d44354e5fd5d66cf7d7a76d9eb8b166e4fb90239a2d707",
    "default": "6313c2ac52a074b93b4307d0f6a736c16143f1fee0a05bd4858b4ec7b1dd39fc",
}
PINNED_IMAGE = {  # (first row's first 3 values, sum of absolute values): floats, compared with a tolerance
    "tiny": ([1.1200740, -0.2234766, 1.7690511], 3928.8521316),
    "default": ([-0.1363468, -1.5158224, -0.9007317], 864513.89714),
}


@pytest.mark.parametrize("size", ["tiny", "default"])
def test_same_seed_gives_the_pinned_dataset(size):
    reader = SyntheticReader(**TINY) if size == "tiny" else SyntheticReader()
    ds = reader.read(None, size)
    assert _digest(ds, reader.generate()) == PINNED[size]
    image = ds.modalities["image"].features
    head, total = PINNED_IMAGE[size]
    np.testing.assert_allclose(image[0, :3], head, rtol=1e-5)
    assert float(np.abs(image.astype(np.float64)).sum()) == pytest.approx(total, rel=1e-5)


def test_heldout_reviews_are_those_of_validation_and_test_interactions():
    from emmkgr_pyg.data.dataset import TRAIN
    from emmkgr_pyg.data.synthetic import SyntheticReader

    reader = SyntheticReader(n_users=60, n_items=40, n_interactions=500, image_dim=4)
    ds = reader.read(None, "tiny")
    held = reader.heldout_reviews()
    inter = ds.interactions
    mask = inter.split != TRAIN
    assert [i for i, _ in held] == inter.item[mask].tolist()
    world = reader.generate()
    assert [t for _, t in held] == world.review[world.split != TRAIN].tolist()
    # the review modality joins training reviews only
    train_reviews = set(world.review[world.split == TRAIN])
    only_held = [t for _, t in held if t not in train_reviews]
    joined = " ".join(ds.modalities["review"].raw)
    assert all(t not in joined for t in only_held)

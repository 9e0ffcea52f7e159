"""SyntheticOptions and how SyntheticReader takes them: frozen, checked, by name from a Hydra config,
and reported with the dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from emmkgr_pyg.data.synthetic import SyntheticOptions, SyntheticReader

CONF = Path(__file__).resolve().parents[3] / "conf" / "dataset"

NAMES = (
    "n_users", "n_items", "n_interactions", "image_dim", "seed", "split_seed", "pop_exponent",
    "taste_concentration", "taste_strength", "explore", "activity_sigma", "prior_concentration",
    "image_hidden", "image_noise", "description_missing", "image_missing", "max_reviews_per_item",
)  # fmt: skip


def test_options_are_frozen_and_keep_their_order():
    opt = SyntheticOptions()
    assert SyntheticOptions.names() == NAMES  # the order of the reported settings
    assert list(opt.as_dict()) == list(NAMES)
    assert opt.as_dict()["n_users"] == 3000 and opt.as_dict()["max_reviews_per_item"] == 20
    with pytest.raises(dataclasses.FrozenInstanceError):
        opt.n_users = 5


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match=r"SyntheticOptions: need n_users >= 1, n_items >= 10"):
        SyntheticOptions(n_items=9)
    with pytest.raises(ValueError, match=r"got 0, 2000, 512"):
        SyntheticReader(n_users=0)


def test_reader_takes_options_and_overrides_by_name():
    base = SyntheticOptions(n_users=200, n_items=150, seed=3)
    assert SyntheticReader(base).options == base
    reader = SyntheticReader(base, n_items=160, split_seed=7)
    assert reader.options == dataclasses.replace(base, n_items=160, split_seed=7)
    assert reader.split_seed == 7  # the Reader base class sees the split seed
    assert reader.settings() == reader.options.as_dict()
    with pytest.raises(ValueError, match=r"SyntheticReader: unknown option\(s\) \['n_user'\]"):
        SyntheticReader(n_user=10)


@pytest.mark.parametrize("config", ["synthetic_tiny", "synthetic", "synthetic_clothing"])
def test_hydra_configs_build_the_options_they_name(config):
    cfg = OmegaConf.load(CONF / f"{config}.yaml")
    reader = instantiate(cfg.reader)
    given = {k: v for k, v in OmegaConf.to_container(cfg.reader).items() if k != "_target_"}
    assert isinstance(reader, SyntheticReader)
    assert reader.options == SyntheticOptions(**given)


def test_streams_are_independent_of_other_options():
    # the image network's stream depends on the seed only: other sizes leave it as it was
    a = SyntheticOptions(n_users=200).rng("image-network").random(4)
    b = SyntheticOptions(n_users=900, n_items=50).rng("image-network").random(4)
    c = SyntheticOptions(seed=1).rng("image-network").random(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, SyntheticOptions().rng("image").random(4))

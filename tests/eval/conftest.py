"""A small generated catalogue with titles, brands, category paths and descriptions (query sets)."""

import pytest

from emmkgr_pyg.data.synthetic import SyntheticReader


@pytest.fixture(scope="session")
def synthetic():
    """Do not modify it (copy it first)."""
    return SyntheticReader(n_users=200, n_items=150, n_interactions=2000, image_dim=8).read(None, "tiny")

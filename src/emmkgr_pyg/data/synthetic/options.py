"""The synthetic shop's options: one frozen record that, with the code, determines the dataset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

MIN_USER_INTERACTIONS = 5


@dataclass(frozen=True)
class SyntheticOptions:
    """What the generator draws, and how (the defaults are the embedded ``synthetic`` dataset).

    Args:
        n_users: number of users (default: ``3000``).
        n_items: number of items (default: ``2000``).
        n_interactions: total interactions, exact unless ``5 * n_users`` is larger
            (default: ``30000``).
        image_dim: dimension of the image feature vectors (default: ``512``).
        seed: seeds everything but the split (default: ``0``).
        split_seed: seed of the MMRec split (default: ``999``).
        pop_exponent: power-law exponent of item popularity, ``0`` = no popularity effect
            (default: ``0.8``).
        taste_concentration: Dirichlet concentration of user tastes; smaller = more focused users
            (default: ``0.3``).
        taste_strength: weight of the attribute match (colour, material, style, brand) in the choice
            of items within a leaf (default: ``1.0``).
        explore: share of a user's leaf choices that follows the catalogue instead of the taste
            (default: ``0.1``).
        activity_sigma: log-normal spread of the per-user interaction counts, the long tail
            (default: ``1.0``).
        prior_concentration: Dirichlet concentration of each leaf's attribute priors
            (default: ``0.7``).
        image_hidden: width of the random network making the image vectors (default: ``256``).
        image_noise: standard deviation of the image noise; the clean signal has unit variance
            (default: ``0.5``).
        description_missing: share of items without a description (default: ``0.2``).
        image_missing: share of items without an image (default: ``0.05``).
        max_reviews_per_item: reviews joined into an item's ``review`` text, ``None`` = all
            (default: ``20``).
    """

    n_users: int = 3000
    n_items: int = 2000
    n_interactions: int = 30000
    image_dim: int = 512
    seed: int = 0
    split_seed: int = 999
    pop_exponent: float = 0.8
    taste_concentration: float = 0.3
    taste_strength: float = 1.0
    explore: float = 0.1
    activity_sigma: float = 1.0
    prior_concentration: float = 0.7
    image_hidden: int = 256
    image_noise: float = 0.5
    description_missing: float = 0.2
    image_missing: float = 0.05
    max_reviews_per_item: int | None = 20

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_items < 2 * MIN_USER_INTERACTIONS or self.image_dim < 1:
            raise ValueError(
                f"SyntheticOptions: need n_users >= 1, n_items >= {2 * MIN_USER_INTERACTIONS} and "
                f"image_dim >= 1 (got {self.n_users}, {self.n_items}, {self.image_dim})."
            )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in their order."""
        return tuple(f.name for f in fields(cls))

    def as_dict(self) -> dict[str, Any]:
        """The options by name (the ``settings`` a generated dataset reports)."""
        return asdict(self)

    def rng(self, stream: str) -> np.random.Generator:
        """An independent generator per part of the story, so that e.g. the image network does not
        change when ``n_users`` does."""
        key = [ord(c) for c in stream]
        return np.random.default_rng(np.random.SeedSequence([self.seed, *key]))

"""The synthetic shop as a dataset reader: options in, a split :class:`MMDataset` out.

Modalities: ``title``, ``description`` and ``review`` (text) and ``image`` (feature). The ``review``
modality of an item joins the reviews of its *training* interactions only (at most
``max_reviews_per_item``), so validation and test interactions never leak into side information.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import TRAIN, Catalog, MMDataset, Modality
from ..readers.base import Reader, finalize
from ..readers.lcrec_json import text_modality
from .image import image_features
from .options import SyntheticOptions
from .text import descriptions, titles
from .vocab import BRANDS
from .world import SyntheticWorld, generate_world


class SyntheticReader(Reader):
    """Generate the synthetic shop (see :mod:`emmkgr_pyg.data.synthetic`); ``read`` ignores ``root``.

    Args:
        options: the generator's options (default: :class:`SyntheticOptions`'s defaults).
        **overrides: options by name, over ``options`` (``SyntheticReader(n_users=200)``); this is
            how a Hydra config (``conf/dataset/synthetic*.yaml``) sets them.
    """

    def __init__(self, options: SyntheticOptions | None = None, **overrides: Any) -> None:
        unknown = set(overrides) - set(SyntheticOptions.names())
        if unknown:
            raise ValueError(
                f"SyntheticReader: unknown option(s) {sorted(unknown)}; the options are "
                f"{', '.join(SyntheticOptions.names())} (see SyntheticOptions)."
            )
        self.options = replace(options or SyntheticOptions(), **overrides)
        super().__init__(self.options.split_seed)

    def settings(self) -> dict[str, Any]:
        """The generator's options by name (they and the code determine the dataset)."""
        return self.options.as_dict()

    def generate(self) -> SyntheticWorld:
        """Everything the generator draws (see :func:`~.world.generate_world`)."""
        return generate_world(self.options)

    def heldout_reviews(self, root: str | Path | None = None) -> list[tuple[int, str]]:
        """(item position, review) of every validation and test interaction: text that no
        modality encodes (``review`` joins training reviews only), where leak-free search queries
        come from (``root`` is ignored: nothing is read)."""
        world = self.generate()
        held = np.flatnonzero(world.split != TRAIN)
        return [(int(world.item[k]), str(world.review[k])) for k in held]

    def read(self, root: str | Path | None, name: str = "synthetic") -> MMDataset:
        """Generate the dataset (``root`` is ignored: nothing is read)."""
        opt = self.options
        world = self.generate()
        tax = world.taxonomy
        rng = opt.rng("texts")
        title = titles(tax, world.items, rng)
        description = descriptions(tax, world.items, rng, opt.description_missing)
        image_items, image = image_features(opt, world)
        modalities = {
            "title": text_modality("title", title),
            "description": text_modality("description", description),
            "review": text_modality("review", review_texts(world, opt.max_reviews_per_item)),
            "image": Modality("image", "feature", image_items, features=image),
        }
        width = max(6, len(str(opt.n_items - 1)))
        catalog = Catalog(
            item_ids=[f"SYN-{i:0{width}d}" for i in range(opt.n_items)],
            title=title,
            brand=[BRANDS[b] for b in world.items.brand],
            categories=[tax.path(int(leaf)) for leaf in world.items.leaf],
            modalities=modalities,
        )
        uwidth = max(6, len(str(opt.n_users - 1)))
        report = {
            "generator": "emmkgr_pyg.data.synthetic.SyntheticReader",
            "seed": opt.seed,
            "settings": self.settings(),
            "split": f"mmrec protocol, seed {opt.split_seed}",
            "items_without_interactions": int(opt.n_items - len(np.unique(world.item))),
        }
        return finalize(
            name,
            [f"SYN-U{u:0{uwidth}d}" for u in range(opt.n_users)],
            world.user,
            world.item,
            catalog,
            split=world.split,
            rating=world.rating,
            report=report,
            source=f"SyntheticReader(seed={opt.seed})",
        )


def review_texts(world: SyntheticWorld, cap: int | None) -> list[str | None]:
    """Per item: its training interactions' reviews joined, at most ``cap`` (``None`` without
    any)."""
    n_items = len(world.items.leaf)
    train = np.flatnonzero(world.split == TRAIN)
    train = train[np.argsort(world.item[train], kind="stable")]
    counts = np.bincount(world.item[train], minlength=n_items)
    groups = np.split(world.review[train], np.cumsum(counts)[:-1])
    return [" ".join(g[:cap]) if len(g) else None for g in groups]

"""What the item index knows about each item (:class:`ItemMeta`: id, title, brand, category path)
and the attribute filters on it (:class:`ItemFilter`: case-insensitive substrings of the category
path and the brand, turned into a bool mask the index applies inside its search)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.dataset import Catalog
from .errors import SearchError


@dataclass
class ItemMeta:
    """What a search result shows about each indexed item, row = position in the index."""

    item_ids: list[str]
    title: list[str | None]
    brand: list[str | None]
    categories: list[list[str]]
    _position: dict[str, int] = field(default_factory=dict, repr=False)
    _lower: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        for name in ("title", "brand", "categories"):
            if len(getattr(self, name)) != n:
                got = len(getattr(self, name))
                raise SearchError(f"ItemMeta: '{name}' has {got} entries for {n} items.")
        self._position = {x: i for i, x in enumerate(self.item_ids)}

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> ItemMeta:
        return cls(
            list(catalog.item_ids),
            list(catalog.title),
            list(catalog.brand),
            [list(c) for c in catalog.categories],
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._position

    def position(self, item_id: str) -> int:
        """The index position of an item id; :class:`SearchError` for an unknown id."""
        pos = self._position.get(str(item_id))
        if pos is None:
            examples = ", ".join(self.item_ids[:3])
            raise SearchError(
                f"item={item_id}: no such item in the index ({len(self)} items, e.g. {examples}). "
                "Give an item id of the run's catalogue (or one added as a cold-start item)."
            )
        return pos

    def append(self, item_id: str, title: str | None, brand: str | None, categories: Sequence[str]) -> int:
        if item_id in self:
            raise SearchError(f"item id '{item_id}' is already in the index; give a new id.")
        self.item_ids.append(str(item_id))
        self.title.append(title)
        self.brand.append(brand)
        self.categories.append(list(categories))
        self._position[str(item_id)] = len(self.item_ids) - 1
        self._lower.clear()
        return len(self.item_ids) - 1

    def lowered(self, name: str) -> list[str]:
        """``brand`` or ``categories`` (the path joined with ``" > "``), lower-case, cached."""
        if name not in self._lower:
            if name == "brand":
                self._lower[name] = [(b or "").lower() for b in self.brand]
            else:
                self._lower[name] = [" > ".join(c).lower() for c in self.categories]
        return self._lower[name]

    def row(self, i: int) -> dict[str, Any]:
        return {
            "item_id": self.item_ids[i],
            "title": self.title[i],
            "brand": self.brand[i],
            "categories": list(self.categories[i]),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "item_ids": self.item_ids,
            "title": self.title,
            "brand": self.brand,
            "categories": self.categories,
        }


@dataclass
class ItemFilter:
    """Attribute filters: case-insensitive substrings of the category path (any level, e.g.
    ``"telephones"``) and of the brand. Both must hold when both are given."""

    category: str | None = None
    brand: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.category) or bool(self.brand)

    def mask(self, meta: ItemMeta) -> np.ndarray:
        """``[n_items]`` bool: which items pass."""
        keep = np.ones(len(meta), dtype=bool)
        for name, needle in (("categories", self.category), ("brand", self.brand)):
            if needle:
                needle = str(needle).lower()
                keep &= np.fromiter((needle in s for s in meta.lowered(name)), bool, len(meta))
        return keep

    def describe(self) -> str:
        parts = [f"{k}~'{v}'" for k, v in (("category", self.category), ("brand", self.brand)) if v]
        return " and ".join(parts) or "none"

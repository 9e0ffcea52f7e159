"""One in-memory representation for every dataset: interactions with a split, and an item catalogue.

Every reader in :mod:`emmkgr_pyg.data.readers` returns a :class:`MMDataset`. Items and users are
indexed ``0..n-1``; their external ids are kept beside. A modality is stored only for the items that
have it (:attr:`Modality.item_index`): an item without a description has no description row, never a
fake vector, and the E-MMKG gives it no description node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2
UNSPLIT = -1
SPLIT_NAMES = {TRAIN: "train", VALID: "valid", TEST: "test"}

#: Kinds of modality content: ``text`` (strings), ``image`` (paths or URLs), ``feature`` (vectors only).
MODALITY_KINDS = ("text", "image", "feature")


class DataError(ValueError):
    """Bad input data. The message names the file, the field and the fix."""


def load_npy(path: str | Path, what: str, mmap: bool = False) -> np.ndarray:
    """The array in ``path``, or a :class:`DataError` naming the file when numpy cannot read it
    (empty, truncated, garbage, pickled objects)."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - EOFError, ValueError, OSError, UnpicklingError, ...
        reason = " ".join(str(e).split()) or "no data"
        raise DataError(
            f"{path}: not a readable .npy file of {what} ({type(e).__name__}: {reason}); it is empty, "
            "truncated or not written by numpy.save. Export it again."
        ) from e


def check_feature_rows(arr: np.ndarray, path: str | Path, n_items: int, fix: str) -> None:
    """A :class:`DataError` naming ``path`` unless ``arr`` is a numeric ``[n_items, dim]`` matrix."""
    if arr.ndim != 2:
        raise DataError(
            f"{path}: an array of shape {arr.shape}; features must be 2-D [{n_items} items, dim] "
            f"(row = item index). {fix}"
        )
    if arr.shape[0] != n_items:
        raise DataError(
            f"{path}: {arr.shape[0]} rows, expected {n_items} (one per item, row = item index). {fix}"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: dtype {arr.dtype}; features must be numbers. {fix}")


@dataclass
class Modality:
    """One modality of the catalogue: raw content and/or features, for the items that have it.

    Args:
        name: the modality name (``title``, ``description``, ``image``, ...); it becomes a node type.
        kind: ``text``, ``image`` or ``feature``.
        item_index: sorted item indices that have this modality, shape ``[M]``.
        raw: raw content aligned with ``item_index`` (texts, image paths or URLs), or ``None``.
        features: a ``float32`` matrix aligned with ``item_index``, shape ``[M, dim]``, or ``None``;
            a ``float16`` matrix stays ``float16`` (half the memory, for catalogues of millions).
    """

    name: str
    kind: str
    item_index: np.ndarray
    raw: list[str] | None = None
    features: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODALITY_KINDS:
            raise DataError(f"Modality '{self.name}': kind '{self.kind}' is not one of {MODALITY_KINDS}.")
        self.item_index = np.asarray(self.item_index, dtype=np.int64)
        if self.raw is not None and len(self.raw) != len(self.item_index):
            raise DataError(
                f"Modality '{self.name}': {len(self.raw)} raw entries for "
                f"{len(self.item_index)} items; give one entry per item in item_index."
            )
        if self.features is not None:
            feats = np.asarray(self.features)
            dtype = np.float16 if feats.dtype == np.float16 else np.float32
            self.features = np.ascontiguousarray(feats, dtype=dtype)
            if self.features.ndim != 2 or self.features.shape[0] != len(self.item_index):
                raise DataError(
                    f"Modality '{self.name}': features of shape {self.features.shape} for "
                    f"{len(self.item_index)} items; expected [{len(self.item_index)}, dim]."
                )

    @property
    def n_items_with(self) -> int:
        return int(len(self.item_index))

    @property
    def dim(self) -> int | None:
        return None if self.features is None else int(self.features.shape[1])

    def dense_features(self, n_items: int, fill: str = "mean") -> np.ndarray:
        """Features as one row per item; items lacking the modality get the mean row (MMRec's rule)
        or zeros. Only for formats that cannot say "missing": the graph never uses this."""
        if self.features is None:
            raise DataError(f"Modality '{self.name}' has no features yet; encode it first.")
        out = np.empty((n_items, self.features.shape[1]), dtype=np.float32)
        out[:] = self.features.mean(0) if fill == "mean" and len(self.features) else 0.0
        out[self.item_index] = self.features
        return out

    def with_features(self, features: np.ndarray) -> Modality:
        return Modality(self.name, self.kind, self.item_index, self.raw, features)


@dataclass
class Catalog:
    """The items: external ids, metadata and modalities.

    ``title``, ``brand`` are one entry per item (``None`` when unknown); ``categories`` is the category
    path of each item, root first (empty when unknown); ``image_urls`` keeps image URLs as metadata.
    """

    item_ids: list[str]
    title: list[str | None]
    brand: list[str | None]
    categories: list[list[str]]
    image_urls: list[list[str]] = field(default_factory=list)
    modalities: dict[str, Modality] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if not self.image_urls:
            self.image_urls = [[] for _ in range(n)]
        for name in ("title", "brand", "categories", "image_urls"):
            if len(getattr(self, name)) != n:
                raise DataError(
                    f"Catalog field '{name}' has {len(getattr(self, name))} entries for {n} items."
                )
        self._check_types()
        for m in self.modalities.values():
            if len(m.item_index) and (m.item_index.min() < 0 or m.item_index.max() >= n):
                raise DataError(
                    f"Modality '{m.name}' names item index {int(m.item_index.max())} but the "
                    f"catalogue has {n} items."
                )

    def _check_types(self) -> None:
        """Every field of every item has its documented type (a reader names the file first)."""
        from .text import check_string_list, check_text  # text imports DataError

        for i, item_id in enumerate(self.item_ids):
            if not isinstance(item_id, str):
                raise DataError(
                    f"Catalog: item index {i} has id {item_id!r} ({type(item_id).__name__}); item ids "
                    "must be strings."
                )
            where = f"Catalog item '{item_id}'"
            check_text(self.title[i], where, "title")
            check_text(self.brand[i], where, "brand")
            for name in ("categories", "image_urls"):
                fix = "a list of strings (empty when unknown)."
                check_string_list(getattr(self, name)[i], where, name, fix)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_row(self, i: int) -> dict[str, Any]:
        """Metadata of item ``i`` as a plain dict (for search results and JSON)."""
        return {
            "item": int(i),
            "item_id": self.item_ids[i],
            "title": self.title[i],
            "brand": self.brand[i],
            "categories": list(self.categories[i]),
        }


@dataclass
class Interactions:
    """User-item interactions: parallel arrays, one entry per interaction.

    ``split`` holds ``TRAIN``/``VALID``/``TEST`` (0/1/2) or ``UNSPLIT`` (-1) before splitting.
    ``order`` is the position of the interaction in its user's history when the source gives an
    order but no timestamp.
    """

    user: np.ndarray
    item: np.ndarray
    split: np.ndarray
    rating: np.ndarray | None = None
    timestamp: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.user = np.asarray(self.user, dtype=np.int64)
        self.item = np.asarray(self.item, dtype=np.int64)
        self.split = np.asarray(self.split, dtype=np.int8)
        n = len(self.user)
        for name in ("item", "split", "rating", "timestamp"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise DataError(f"Interactions field '{name}' has {len(arr)} entries, expected {n}.")

    def __len__(self) -> int:
        return len(self.user)

    def select(self, mask: np.ndarray) -> Interactions:
        return Interactions(
            self.user[mask],
            self.item[mask],
            self.split[mask],
            None if self.rating is None else self.rating[mask],
            None if self.timestamp is None else self.timestamp[mask],
        )

    def part(self, split: int) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of one split."""
        m = self.split == split
        return self.user[m], self.item[m]


@dataclass
class MMDataset:
    """A multimodal recommendation dataset.

    Attributes:
        name: a short name (used in cache keys and reports).
        user_ids: external user ids, index = user index.
        interactions: all interactions with their split.
        catalog: the items.
        report: counts of what a reader repaired or dropped (duplicates, unreadable lines, ...).
    """

    name: str
    user_ids: list[str]
    interactions: Interactions
    catalog: Catalog
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return self.catalog.n_items

    @property
    def modalities(self) -> dict[str, Modality]:
        return self.catalog.modalities

    def split_counts(self) -> dict[str, int]:
        return {name: int((self.interactions.split == code).sum()) for code, name in SPLIT_NAMES.items()}

    def stats(self) -> dict[str, Any]:
        """The figures ``stats.json`` holds."""
        return {
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": len(self.interactions),
            "splits": self.split_counts(),
            "modalities": {
                name: {"kind": m.kind, "dim": m.dim, "n_items_with": m.n_items_with}
                for name, m in self.modalities.items()
            },
        }

    def validate(self, source: str = "dataset") -> None:
        """Check internal consistency; raise :class:`DataError` naming ``source`` and the fix."""
        inter = self.interactions
        if len(inter) == 0:
            raise DataError(f"{source}: no interactions were read.")
        bad_item = (inter.item < 0) | (inter.item >= self.n_items)
        if bad_item.any():
            raise DataError(
                f"{source}: {int(bad_item.sum())} interactions name unknown items (e.g. item index "
                f"{int(inter.item[bad_item][0])}; the catalogue has {self.n_items}). Add the items "
                "to the catalogue or drop those interactions."
            )
        bad_user = (inter.user < 0) | (inter.user >= self.n_users)
        if bad_user.any():
            raise DataError(
                f"{source}: {int(bad_user.sum())} interactions name unknown users "
                f"(e.g. user index {int(inter.user[bad_user][0])}; there are {self.n_users})."
            )
        for m in self.modalities.values():
            if m.features is not None and not np.isfinite(m.features).all():
                rows = np.where(~np.isfinite(m.features).all(1))[0]
                raise DataError(
                    f"{source}: modality '{m.name}' has NaN or inf features in {len(rows)} rows "
                    f"(first item index {int(m.item_index[rows[0]])}). Re-encode those items or "
                    "drop them from the modality."
                )
        if (inter.split != UNSPLIT).any() and not (inter.split == TEST).any():
            raise DataError(
                f"{source}: the split has no test interaction for any user. Re-split (e.g. the MMRec "
                "protocol) or fix the x_label column."
            )


def drop_duplicate_interactions(user: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep the first occurrence of every (user, item) pair. Returns (kept mask, number dropped)."""
    key = np.asarray(user, dtype=np.int64) * (int(np.max(item, initial=0)) + 1) + np.asarray(item)
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(len(key), dtype=bool)
    keep[first] = True
    return keep, int(len(key) - keep.sum())


def index_ids(ids: Sequence[str]) -> dict[str, int]:
    """Map external ids to indices in order of first appearance."""
    out: dict[str, int] = {}
    for x in ids:
        if x not in out:
            out[x] = len(out)
    return out

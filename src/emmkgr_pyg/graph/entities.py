r"""Attribute values as shared entity nodes of the E-MMKG (an extension of the paper's graph).

The paper gives each item one node per modality; a brand or a category shared by many items then
exists only as words inside each item's text node. Item knowledge graphs for recommendation (KGAT,
KGIN) instead make each attribute value one entity linked to every item that has it, so that
"Sharpie" or "Office Products > Writing > Markers" is one node whose neighbours are its items.
:func:`entity_links` turns catalogue fields into such entities; :func:`~.emmkg.build_emmkg` adds
them as node types without features (the encoder learns an embedding per entity) with the
relations ``('item', 'has_<field>', <field>)`` and ``(<field>, '<field>_of', 'item')``.

Fields (``graph.entities``):

- ``brand``: the item's brand, case and spacing folded;
- ``category``: every node of the item's category path, named by its path prefix (so that
  "Pens" under two parents are two entities), root first.

Values shared by fewer than ``min_items`` items link nothing (an entity of one item adds a node
but no path between items) and values shared by more than ``max_share`` of the items are dropped
(a root category linked to every item is a hub that averages the whole catalogue).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.dataset import Catalog
from ..utils import ConfigError

ENTITY_FIELDS = ("brand", "category")
PATH_SEP = " > "


@dataclass
class EntityLinks:
    """The entities of one field: ``names`` (one per entity, in id order) and the links
    ``item`` -> ``entity`` as two aligned id arrays."""

    field: str
    names: list[str]
    item: np.ndarray
    entity: np.ndarray

    @property
    def n_entities(self) -> int:
        return len(self.names)


def _values(catalog: Catalog, field: str) -> list[list[str]]:
    if field == "brand":
        return [[" ".join(b.split()).casefold()] if b and b.strip() else [] for b in catalog.brand]
    if field == "category":
        out = []
        for path in catalog.categories:
            parts = [" ".join(p.split()) for p in path if p and p.strip()]
            out.append([PATH_SEP.join(parts[: k + 1]) for k in range(len(parts))])
        return out
    raise ConfigError(f"graph.entities: '{field}' is not an entity field; use some of {list(ENTITY_FIELDS)}.")


def entity_links(catalog: Catalog, field: str, *, min_items: int = 2, max_share: float = 0.5) -> EntityLinks:
    """The entities of catalogue ``field`` and their items (see the module docstring).

    Raises:
        ConfigError: an unknown field, ``min_items < 1`` or ``max_share`` outside ``(0, 1]``.
    """
    if int(min_items) < 1:
        raise ConfigError(f"graph.entity_min_items={min_items}: give at least 1.")
    if not 0.0 < float(max_share) <= 1.0:
        raise ConfigError(f"graph.entity_max_share={max_share}: give a fraction in (0, 1].")
    values = _values(catalog, field)
    items, keys = [], []
    for i, vals in enumerate(values):
        for v in dict.fromkeys(vals):  # each value once per item, in order
            items.append(i)
            keys.append(v)
    if not keys:
        return EntityLinks(field, [], np.zeros(0, np.int64), np.zeros(0, np.int64))
    names, inverse, counts = np.unique(
        np.asarray(keys, dtype=object), return_inverse=True, return_counts=True
    )
    keep = (counts >= int(min_items)) & (counts <= float(max_share) * catalog.n_items)
    new_id = np.full(len(names), -1, dtype=np.int64)
    new_id[keep] = np.arange(int(keep.sum()))
    entity = new_id[inverse]
    mask = entity >= 0
    return EntityLinks(field, [str(n) for n in names[keep]], np.asarray(items, np.int64)[mask], entity[mask])

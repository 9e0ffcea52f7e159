r"""Similar items: the nearest items of an item in the learned space,

.. math::
    \mathrm{TopN}_{j \ne i}\; \mathrm{sim}(\mathbf{h}^{MM}_i, \mathbf{h}^{MM}_j),

with attribute filters applied inside the search (the item itself is filtered out the same way),
so ``k`` results come back whenever ``k`` other items pass the filter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .index import ItemIndex
from .meta import ItemFilter


def similar_items(
    index: ItemIndex, item_id: str, k: int = 10, item_filter: ItemFilter | None = None
) -> list[dict[str, Any]]:
    """The ``k`` items most similar to ``item_id`` (an item of the run or a cold-start item), as
    result rows (rank, item id, title, brand, categories, score).

    Raises:
        SearchError: ``item_id`` is not in the index.
    """
    pos = index.meta.position(item_id)
    allowed = (
        item_filter.mask(index.meta)
        if item_filter is not None and item_filter.active
        else np.ones(index.n_items, dtype=bool)
    )
    allowed[pos] = False
    scores, found = index.search(index.vector(pos)[None], k, allowed)
    return index.results(scores[0], found[0])

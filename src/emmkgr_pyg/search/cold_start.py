r"""Cold-start items: a new item given only its modality content joins the item space and the
index without retraining.

Each piece of content goes through its modality's :math:`f^{m}_{enc}` and :math:`f^{m}_{proj}`; the
new item is attached to the trained E-MMKG (its modality nodes to their top-n most similar nodes of
the same modality, Eq. 2) and the trained encoder's propagation (Eq. 4) gives its
:math:`\mathbf{h}^{MM}` (:class:`~emmkgr_pyg.nn.inductive.InductivePropagator`, which states the
rule and when it is exact). A new item has no interactions, so :math:`\mathbf{H}^{IN} = 0` and its
:math:`\mathbf{H}_{item} = \mathbf{h}^{MM}`: the same vector serves an index over either embedding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import SearchError
from .index import ItemIndex
from .query import QueryEncoder, propagate


class ColdStart:
    """Embeds new items and adds them to an :class:`ItemIndex`.

    Args:
        encoder: a :class:`QueryEncoder` of the run with the ``propagated`` mapping (it holds the
            :math:`f_{enc}` of every modality and the
            :class:`~emmkgr_pyg.nn.inductive.InductivePropagator`).
        index: the item index new items join.
    """

    def __init__(self, encoder: QueryEncoder, index: ItemIndex) -> None:
        if encoder.propagator is None:
            raise SearchError("ColdStart: the QueryEncoder needs mapping='propagated'.")
        self.encoder = encoder
        self.index = index

    @classmethod
    def from_run(cls, run: Any, index: ItemIndex, top_n: int | None = None) -> ColdStart:
        """For a :class:`~emmkgr_pyg.runs.TrainedRun` of E-MMKGR and its index."""
        return cls(QueryEncoder.from_run(run, mapping="propagated", top_n=top_n), index)

    def embed(self, contents: Sequence[Mapping[str, Any]]) -> np.ndarray:
        r""":math:`\mathbf{h}^{MM}` ``[B, d]`` of new items, each given as ``{modality: content}``
        (a text for text modalities, an image path for image modalities, a feature vector for
        feature modalities)."""
        if not contents or any(not c for c in contents):
            raise SearchError(
                "a new item needs content in at least one modality, e.g. {'title': '...'}; "
                f"the run's modalities are {self.encoder.modalities}."
            )
        raw = [self.encoder.raw_content(c) for c in contents]
        return propagate(self.encoder.propagator, raw)

    def add(
        self,
        item_id: str,
        contents: Mapping[str, Any],
        title: str | None = None,
        brand: str | None = None,
        categories: Sequence[str] = (),
    ) -> int:
        """Embed one new item and add it to the index; returns its index position. ``title``
        defaults to its ``title`` content when it has one."""
        vector = self.embed([contents])
        if title is None and isinstance(contents.get("title"), str):
            title = contents["title"]
        pos = self.index.add(vector, [item_id], [title], [brand], [list(categories)])
        return int(pos[0])

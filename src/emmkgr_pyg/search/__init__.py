"""Product search on the learned item space (paper section 3.3): query encoding and mapping, the
faiss item index with attribute filters, similar items, cold-start items, and the vector-based
baseline."""

from .cold_start import ColdStart
from .index import (
    EMBEDDINGS,
    INDEX_FILE,
    META_FILE,
    ItemFilter,
    ItemIndex,
    ItemMeta,
    SearchError,
    VectorBaseline,
    open_index,
    run_embeddings,
)
from .query import MAPPINGS, InductivePropagator, QueryEncoder, modality_encoders
from .similar import similar_items

__all__ = [
    "EMBEDDINGS",
    "INDEX_FILE",
    "MAPPINGS",
    "META_FILE",
    "ColdStart",
    "InductivePropagator",
    "ItemFilter",
    "ItemIndex",
    "ItemMeta",
    "QueryEncoder",
    "SearchError",
    "VectorBaseline",
    "modality_encoders",
    "open_index",
    "run_embeddings",
    "similar_items",
]

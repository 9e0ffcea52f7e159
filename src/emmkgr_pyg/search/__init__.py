"""Product search on the learned item space (paper section 3.3): query encoding and mapping, the
faiss item index with attribute filters, similar items, cold-start items, and the vector-based
baseline. Opening a trained run's index is :mod:`emmkgr_pyg.runs.search`."""

from .baseline import VectorBaseline
from .cold_start import ColdStart
from .errors import SearchError
from .index import INDEX_FILE, INDEX_KINDS, META_FILE, ItemIndex
from .meta import ItemFilter, ItemMeta
from .query import MAPPINGS, QueryEncoder, modality_encoders
from .similar import similar_items

__all__ = [
    "INDEX_FILE",
    "INDEX_KINDS",
    "MAPPINGS",
    "META_FILE",
    "ColdStart",
    "ItemFilter",
    "ItemIndex",
    "ItemMeta",
    "QueryEncoder",
    "SearchError",
    "VectorBaseline",
    "modality_encoders",
    "similar_items",
]

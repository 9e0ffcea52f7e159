"""Product search on the learned item space (paper section 3.3): query encoding and mapping, the
faiss item index with attribute filters, similar items, cold-start items, search as link
prediction in the E-MMKG (:mod:`.kg`), pseudo-relevance feedback in the learned space
(:mod:`.feedback`), and the searches a user would pick instead: the vector-based
baseline, BM25 and their fusion (:mod:`.fusion`: reciprocal rank or z-score). Opening a trained
run's index is :mod:`emmkgr_pyg.runs.search`."""

from .baseline import VectorBaseline
from .bm25 import BM25Search
from .cold_start import ColdStart
from .errors import SearchError
from .feedback import FEEDBACK_SPACES, feedback_scores, with_feedback
from .fusion import FUSIONS, fuse, rrf, zscore
from .index import INDEX_FILE, INDEX_KINDS, META_FILE, ItemIndex
from .kg import KG_NODES, KGSearch
from .meta import ItemFilter, ItemMeta
from .query import MAPPINGS, QueryEncoder, modality_encoders
from .similar import similar_items

__all__ = [
    "FEEDBACK_SPACES",
    "FUSIONS",
    "INDEX_FILE",
    "INDEX_KINDS",
    "KG_NODES",
    "MAPPINGS",
    "META_FILE",
    "BM25Search",
    "ColdStart",
    "ItemFilter",
    "ItemIndex",
    "ItemMeta",
    "KGSearch",
    "QueryEncoder",
    "SearchError",
    "VectorBaseline",
    "feedback_scores",
    "fuse",
    "modality_encoders",
    "rrf",
    "similar_items",
    "with_feedback",
    "zscore",
]

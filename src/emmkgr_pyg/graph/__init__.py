"""Building the E-MMKG as a HeteroData (modality nodes, faiss kNN edges, triples) and the
user-item interaction graph."""

from .emmkg import ITEM, ITEM_ITEM, build_emmkg, graph_stats
from .interaction import InteractionGraph
from .knn import KNNBuilder
from .triples import KGView, kg_view

__all__ = [
    "ITEM",
    "ITEM_ITEM",
    "InteractionGraph",
    "KGView",
    "KNNBuilder",
    "build_emmkg",
    "graph_stats",
    "kg_view",
]

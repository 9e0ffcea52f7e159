"""LightGCNConv, the E-MMKG encoder, RotatE scoring and the recommenders."""

from .conv import LightGCNConv, lightgcn_norm
from .encoder import EMMKGEncoder
from .kge import KGLoss, RelationPhases, rotate_distance
from .recommender import EMMKGR, Embeddings, KGBatch, LightGCN, Recommender

__all__ = [
    "EMMKGR",
    "EMMKGEncoder",
    "Embeddings",
    "KGBatch",
    "KGLoss",
    "LightGCN",
    "LightGCNConv",
    "Recommender",
    "RelationPhases",
    "lightgcn_norm",
    "rotate_distance",
]

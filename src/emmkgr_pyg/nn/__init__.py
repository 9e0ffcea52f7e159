"""LightGCNConv, the E-MMKG encoder, RotatE scoring, the recommenders, and the propagation of new
items into a trained E-MMKG."""

from .conv import LightGCNConv, lightgcn_norm
from .encoder import EMMKGEncoder
from .inductive import InductivePropagator
from .kge import KGLoss, RelationPhases, rotate_distance
from .recommender import EMMKGR, Embeddings, KGBatch, LightGCN, Recommender

__all__ = [
    "EMMKGR",
    "EMMKGEncoder",
    "Embeddings",
    "InductivePropagator",
    "KGBatch",
    "KGLoss",
    "LightGCN",
    "LightGCNConv",
    "Recommender",
    "RelationPhases",
    "lightgcn_norm",
    "rotate_distance",
]

"""LightGCNConv, the E-MMKG encoder, RotatE scoring, the pieces every model shares, the
recommenders, and the propagation of new items into a trained E-MMKG."""

from .blocks import (
    FrozenFeatures,
    IDEmbedding,
    bpr_loss,
    embedding_reg,
    id_layer_mean,
    info_nce,
    last_layer,
    layer_mean,
    layer_sum,
)
from .conv import LightGCNConv, lightgcn_norm
from .emmkgr import EMMKGR
from .encoder import EMMKGEncoder
from .inductive import InductivePropagator
from .kge import KGLoss, RelationPhases, rotate_distance
from .recommender import Embeddings, KGBatch, LightGCN, Recommender

__all__ = [
    "EMMKGR",
    "EMMKGEncoder",
    "Embeddings",
    "FrozenFeatures",
    "IDEmbedding",
    "InductivePropagator",
    "KGBatch",
    "KGLoss",
    "LightGCN",
    "LightGCNConv",
    "Recommender",
    "RelationPhases",
    "bpr_loss",
    "embedding_reg",
    "id_layer_mean",
    "info_nce",
    "last_layer",
    "layer_mean",
    "layer_sum",
    "lightgcn_norm",
    "rotate_distance",
]

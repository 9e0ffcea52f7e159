"""LightGCNConv, sparse products with learned edge values, the E-MMKG encoder, RotatE scoring,
the pieces every model shares, the recommenders, and the propagation of new items into a trained
E-MMKG."""

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
    softmax_loss,
)
from .conv import LightGCNConv, lightgcn_norm
from .edge_ops import EdgePattern, edge_dot, weighted_spmm
from .emmkgr import EMMKGR
from .encoder import EMMKGEncoder
from .inductive import InductivePropagator
from .kge import KGLoss, RelationPhases, rotate_distance
from .recommender import Embeddings, KGBatch, LightGCN, Recommender

__all__ = [
    "EMMKGR",
    "EdgePattern",
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
    "edge_dot",
    "embedding_reg",
    "id_layer_mean",
    "info_nce",
    "last_layer",
    "layer_mean",
    "layer_sum",
    "lightgcn_norm",
    "rotate_distance",
    "softmax_loss",
    "weighted_spmm",
]

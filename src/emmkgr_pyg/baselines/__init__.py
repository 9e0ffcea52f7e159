"""The peer models, on the same data, graph and protocol as E-MMKGR: FREEDOM, LATTICE, BM3 (MMRec's
multimodal baselines) and PyG's stock LightGCN."""

from .bm3 import BM3
from .freedom import FREEDOM
from .lattice import LATTICE
from .lightgcn_pyg import LightGCNPyG

__all__ = ["BM3", "FREEDOM", "LATTICE", "LightGCNPyG"]

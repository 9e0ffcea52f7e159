"""The peer models, on the same data, graph and protocol as E-MMKGR: GRCN, DualGNN, LATTICE, BM3,
FREEDOM, LGMRec (MMRec's multimodal baselines) and PyG's stock LightGCN."""

from .bm3 import BM3
from .dualgnn import DualGNN
from .freedom import FREEDOM
from .grcn import GRCN
from .lattice import LATTICE
from .lgmrec import LGMRec
from .lightgcn_pyg import LightGCNPyG

__all__ = ["BM3", "FREEDOM", "GRCN", "LATTICE", "DualGNN", "LGMRec", "LightGCNPyG"]

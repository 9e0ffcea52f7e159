"""What a trained run folder holds: the one place that names its files and the keys of
``embeddings.pt``.

A run folder (``hydra.run.dir`` of ``emmkgr-train``) holds ``results.json`` (metrics, timings and the
resolved config), ``best.pt`` / ``last.pt`` (checkpoints), ``embeddings.pt`` (the item
embeddings search uses: ``item`` = H_item, ``H_mm_item`` = H^MM for E-MMKGR, ``H_mm_<m>`` per
modality node type), ``graph_stats.json`` and ``history.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..nn.recommender import ITEM, MM_ITEM, USER
from ..utils import atomic_path

RESULTS = "results.json"
BEST = "best.pt"
LAST = "last.pt"
EMBEDDINGS = "embeddings.pt"
GRAPH_STATS = "graph_stats.json"
HISTORY = "history.jsonl"
ERROR = "error.json"

# embeddings.pt keys, named where the models produce them: ITEM (H_item, what recommendation
# scores), USER, MM_ITEM (E-MMKGR's H^MM item rows, what search indexes, Eq. 7)
#: item embeddings of a run that search can index
SEARCHABLE = (MM_ITEM, ITEM)

__all__ = [
    "BEST",
    "EMBEDDINGS",
    "ERROR",
    "GRAPH_STATS",
    "HISTORY",
    "ITEM",
    "LAST",
    "MM_ITEM",
    "RESULTS",
    "SEARCHABLE",
    "USER",
    "load_embeddings",
    "save_embeddings",
]


def save_embeddings(run_dir: str | Path, embeddings: dict[str, Tensor]) -> Path:
    """Write ``embeddings.pt`` (atomically): tensors only, detached, on the CPU."""
    path = Path(run_dir) / EMBEDDINGS
    payload = {k: v.detach().cpu().clone() for k, v in embeddings.items() if v is not None}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_embeddings(run_dir: str | Path) -> dict[str, Tensor]:
    """Read ``embeddings.pt`` (tensors only: ``weights_only=True``)."""
    path = Path(run_dir) / EMBEDDINGS
    if not path.is_file():
        raise FileNotFoundError(
            f"run_dir={run_dir} is not a trained run: {EMBEDDINGS} is missing. Train one with "
            f"`emmkgr-train model=emmkgr hydra.run.dir={run_dir}` or point run_dir at a finished run."
        )
    return torch.load(path, map_location="cpu", weights_only=True)

"""What a trained run folder holds: the one place that names its files and the keys of
``embeddings.pt``.

A run folder (``hydra.run.dir`` of ``emmkgr-train``) holds ``results.json`` (metrics, timings and the
resolved config), ``best.pt`` / ``last.pt`` (checkpoints), ``embeddings.pt`` (the item
embeddings search uses: ``item`` = H_item, ``H_mm_item`` = H^MM for E-MMKGR, ``H_mm_<m>`` per
modality node type), ``graph_stats.json`` and ``history.jsonl``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import Tensor

from ..data.dataset import DataError, MMDataset
from ..nn.recommender import ITEM, MM_ITEM, USER
from ..utils import atomic_path, stable_hash

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
    "UntrustedRunError",
    "catalog_fingerprint",
    "load_embeddings",
    "load_tensors",
    "save_embeddings",
]


class UntrustedRunError(DataError):
    """A run folder holds something that would run code if loaded: it is refused, nothing ran."""


def load_tensors(path: str | Path) -> dict:
    """A checkpoint or ``embeddings.pt``: tensors and plain containers only (``weights_only``), so
    a file from elsewhere cannot run code when read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UntrustedRunError(
            f"{path}: holds more than tensors and plain containers ({first}); it was not loaded. "
            "Retrain the run, or load it yourself with torch.load(weights_only=False) if you trust it."
        ) from None


def catalog_fingerprint(dataset: MMDataset) -> str:
    """A hash of what a run's item embeddings were learned from: the items' ids, titles, brands,
    categories and every modality's items and features."""
    cat = dataset.catalog
    parts: list = [cat.item_ids, [t or "" for t in cat.title], [b or "" for b in cat.brand], cat.categories]
    for name in sorted(cat.modalities):
        m = cat.modalities[name]
        parts += [name, m.item_index, m.features if m.features is not None else (m.raw or [])]
    return stable_hash(*parts)


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
    return load_tensors(path)

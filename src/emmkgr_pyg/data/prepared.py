"""Reading a dataset from its config, encoding its modalities, and the prepared-dataset folder.

A prepared folder is an MMRec folder (``<name>.inter``, ``<modality>_feat.npy``; readable by the
MMRec toolbox) with this project's lossless side files (see :mod:`.readers.mmrec`), plus
``stats.json`` and ``prepare.json`` (the encoders, timings and the reader's report). It is written
to a temporary folder and swapped in whole, so a failed run never leaves a half-written folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..utils import atomic_dir, write_json
from .dataset import DataError, MMDataset
from .features import FeatureCache, encode_dataset, resolve_modalities
from .readers.mmrec import MMRecReader, write_mmrec

log = logging.getLogger(__name__)


def load_dataset(dataset_cfg: Mapping[str, Any]) -> MMDataset:
    """Build the reader of a ``conf/dataset`` config and read ``dataset.root``."""
    from hydra.utils import instantiate

    if "reader" not in dataset_cfg or "name" not in dataset_cfg:
        raise DataError("dataset config needs 'name' and 'reader' (with a _target_); see conf/dataset/.")
    reader = instantiate(dataset_cfg["reader"])
    root = dataset_cfg.get("root")
    return reader.read(None if root is None else Path(str(root)).expanduser(), str(dataset_cfg["name"]))


def prepare_dataset(
    dataset_cfg: Mapping[str, Any],
    modality_cfg: Mapping[str, Any],
    cache_dir: str | Path | None,
    progress: bool = True,
) -> tuple[MMDataset, dict[str, Any]]:
    """Read, split and encode a dataset. Returns it with a record of timings and encoders."""
    t0 = time.perf_counter()
    raw = load_dataset(dataset_cfg)
    t_read = time.perf_counter() - t0
    specs = resolve_modalities(raw, modality_cfg)
    cache = FeatureCache(cache_dir) if cache_dir else None
    ds, records = encode_dataset(raw, specs, cache=cache, progress=progress)
    record = {
        "read_seconds": round(t_read, 3),
        "encode": records,
        "total_seconds": round(time.perf_counter() - t0, 3),
        "report": ds.report,
    }
    return ds, record


def save_prepared(dataset: MMDataset, out_dir: str | Path, record: dict[str, Any] | None = None) -> Path:
    """Write a prepared folder (atomically, as a whole)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        write_mmrec(dataset, tmp, dataset.name)
        write_json(tmp / "prepare.json", record or {"report": dataset.report})
        write_json(tmp / "stats.json", dataset.stats())
    return out_dir


def load_prepared(path: str | Path, name: str | None = None) -> MMDataset:
    """Read a prepared folder written by :func:`save_prepared`."""
    import json

    path = Path(path)
    stats_path = path / "stats.json"
    if not stats_path.is_file():
        raise DataError(
            f"{path}: not a prepared dataset (no stats.json). Create it with "
            "`emmkgr-prepare dataset=<name> out_dir=<dir>`."
        )
    stats = json.loads(stats_path.read_text())
    return MMRecReader().read(path, name or stats["name"])

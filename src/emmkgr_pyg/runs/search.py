"""Search on a trained run folder: its item embeddings (:data:`.artifacts.EMBEDDINGS`), the
faiss index saved beside it, and the search evaluation of a loaded run (E-MMKGR against the vector
baseline on each query set)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..eval.search_eval import evaluate
from ..eval.search_queries import SearchQuery
from ..graph.knn import normalize_rows
from ..search.baseline import VectorBaseline
from ..search.errors import SearchError
from ..search.index import INDEX_FILE, META_FILE, ItemIndex
from ..search.meta import ItemMeta
from ..search.query import QueryEncoder
from ..utils import stable_hash
from . import artifacts
from .load import TrainedRun

log = logging.getLogger(__name__)


def run_embeddings(run_dir: str | Path, embedding: str = artifacts.MM_ITEM) -> np.ndarray:
    """One item embedding matrix of a trained run (one of :data:`.artifacts.SEARCHABLE`),
    ``[N, d]``."""
    saved = artifacts.load_embeddings(run_dir)  # first: a folder that is no run is reported as such
    if embedding not in artifacts.SEARCHABLE:
        raise SearchError(f"search.embedding={embedding}: choose one of {list(artifacts.SEARCHABLE)}.")
    if embedding not in saved:
        raise SearchError(
            f"search.embedding={embedding}: {Path(run_dir) / artifacts.EMBEDDINGS} has {sorted(saved)}. "
            f"Use one of {list(artifacts.SEARCHABLE)} the run has ({artifacts.MM_ITEM} needs a run "
            "trained with model=emmkgr)."
        )
    return saved[embedding].detach().float().numpy()


def open_index(
    run_dir: str | Path,
    meta: ItemMeta | Callable[[], ItemMeta],
    embedding: str = artifacts.MM_ITEM,
    kind: str = "exact",
    rebuild: bool = False,
    save: bool = True,
    **kwargs: Any,
) -> ItemIndex:
    """The run's item index: the saved one (``search_index.faiss``) when it indexes these very
    embeddings (same fingerprint, embedding and kind; cold-start items it holds are kept), else a
    new one, saved beside the run when ``save``.

    Args:
        run_dir: a trained run folder.
        meta: the items' metadata, or a function giving it (called only when building).
        embedding: one of :data:`.artifacts.SEARCHABLE` (default :data:`.artifacts.MM_ITEM`).
        kind: ``exact`` or ``hnsw``.
        rebuild: build even when a matching index is saved.
        save: write a newly built index beside the run.
        kwargs: further :class:`ItemIndex` arguments (``hnsw_m``, ``ef_search``).
    """
    run_dir = Path(run_dir)
    vectors = run_embeddings(run_dir, embedding)
    fingerprint = stable_hash(normalize_rows(vectors))
    if not rebuild and (run_dir / META_FILE).is_file() and (run_dir / INDEX_FILE).is_file():
        info = json.loads((run_dir / META_FILE).read_text())
        saved = (info.get("fingerprint"), info.get("embedding"), info.get("kind"))
        if saved == (fingerprint, embedding, kind):
            return ItemIndex.load(run_dir)
        log.info("%s indexes other embeddings (%s, %s); rebuilding it", INDEX_FILE, *saved[1:])
    meta = meta() if callable(meta) else meta
    index = ItemIndex(vectors, meta, embedding, kind, fingerprint=fingerprint, **kwargs)
    if save:
        index.save(run_dir)
    return index


def evaluate_run(
    run: TrainedRun,
    sets: dict[str, list[SearchQuery]],
    mapping: str = "propagated",
    query_modality: str = "all",
    embedding: str = artifacts.MM_ITEM,
    top_n: int | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """E-MMKGR and the vector baseline on each query set of a loaded run,
    ``{set: {"emmkgr" | "vector_baseline": {metric: value}}}`` (metrics of
    :func:`~emmkgr_pyg.eval.search_eval.evaluate`)."""
    qenc = QueryEncoder.from_run(run, mapping, query_modality, top_n)
    meta = ItemMeta.from_catalog(run.dataset.catalog)
    index = ItemIndex(run_embeddings(run.run_dir, embedding), meta, embedding)
    baseline = VectorBaseline.from_dataset(run.dataset, qenc.text_modalities)
    texts = sorted({q.text for qs in sets.values() for q in qs})
    raw = qenc.raw_text(texts, progress=progress)
    row = {t: i for i, t in enumerate(texts)}

    def raw_of(batch: list[SearchQuery], modalities: list[str]) -> dict[str, np.ndarray]:
        rows = [row[q.text] for q in batch]
        return {m: raw[m][rows] for m in modalities}

    def emmkgr(batch: list[SearchQuery]) -> np.ndarray:
        return index.scores(qenc.map(raw_of(batch, qenc.query_modalities)))

    def vector_baseline(batch: list[SearchQuery]) -> np.ndarray:
        return baseline.scores(raw_of(batch, qenc.text_modalities))

    ids = run.dataset.catalog.item_ids
    return {
        s: {
            name: evaluate(fn, queries, ids, batch_size, progress=progress, desc=f"{s}/{name}")
            for name, fn in (("emmkgr", emmkgr), ("vector_baseline", vector_baseline))
        }
        for s, queries in sets.items()
    }

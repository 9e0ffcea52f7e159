"""``emmkgr-eval-search run_dir=<run>``: product search evaluated as in the paper (section 4.1).

Builds the fine- and coarse-grained query sets from the run's catalogue (seeded; saved as JSONL in
``query_dir`` and reused while their settings match), ranks every item for every query with
E-MMKGR (the configured ``search`` mapping, cosine with the indexed embedding) and with the
vector-based baseline, and writes ``search_results.json``
(``{"fine"|"coarse": {"emmkgr"|"vector_baseline": {metric: value}}, "settings": ...}``) and
``search_results.md``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..data.dataset import MMDataset
from ..eval.search_eval import (
    QUERY_SETS,
    QuerySetConfig,
    SearchQuery,
    build_query_sets,
    evaluate,
    load_queries,
    results_table,
    save_queries,
)
from ..search.index import ItemIndex, ItemMeta, SearchError, VectorBaseline, run_embeddings
from ..search.query import QueryEncoder
from ..utils import markdown_table, stable_hash, write_json, write_text
from . import CONFIG_PATH, USER_ERRORS, fail

log = logging.getLogger("emmkgr-eval-search")
MANIFEST = "search_queries.json"


def query_sets(
    dataset: MMDataset,
    cfg: QuerySetConfig,
    folder: str | Path,
    description_modality: str | None = "description",
    rebuild: bool = False,
) -> dict[str, list[SearchQuery]]:
    """The query sets of a dataset: read from ``folder`` when saved with the same settings and
    catalogue, else built and saved there (``search_queries_<set>.jsonl`` + a manifest)."""
    folder = Path(folder)
    key = stable_hash(vars(cfg), dataset.name, dataset.catalog.item_ids, description_modality)
    manifest = folder / MANIFEST
    paths = {s: folder / f"search_queries_{s}.jsonl" for s in QUERY_SETS}
    if not rebuild and manifest.is_file() and all(p.is_file() for p in paths.values()):
        if json.loads(manifest.read_text()).get("key") == key:
            log.info("reusing the query sets in %s", folder)
            return {s: load_queries(p) for s, p in paths.items()}
    descriptions: list[str | None] = [None] * dataset.n_items
    mod = dataset.modalities.get(description_modality) if description_modality else None
    if mod is not None and mod.raw is not None:
        for i, text in zip(mod.item_index, mod.raw, strict=True):
            descriptions[i] = text
    t0 = time.perf_counter()
    sets = build_query_sets(dataset.catalog, descriptions, cfg)
    for s, p in paths.items():
        save_queries(p, sets[s])
    write_json(
        manifest,
        {
            "key": key,
            "dataset": dataset.name,
            "settings": vars(cfg),
            "description_modality": description_modality,
            "counts": {s: len(q) for s, q in sets.items()},
            "build_seconds": round(time.perf_counter() - t0, 3),
        },
    )
    log.info("built %s queries; saved in %s", {s: len(q) for s, q in sets.items()}, folder)
    return sets


def evaluate_run(
    run: Any,
    sets: dict[str, list[SearchQuery]],
    mapping: str = "propagated",
    query_modality: str = "all",
    embedding: str = "H_mm_item",
    top_n: int | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """E-MMKGR and the vector baseline on each query set of a loaded run."""
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


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval_search")
def main(cfg: DictConfig) -> None:
    from ..train.pipeline import load_run

    try:
        if not cfg.run_dir:
            raise SearchError("run_dir is not set: emmkgr-eval-search run_dir=<a trained run>.")
        run = load_run(cfg.run_dir)
        qcfg = QuerySetConfig(**OmegaConf.to_container(cfg.queries, resolve=True))
        sets = query_sets(run.dataset, qcfg, cfg.query_dir, cfg.description_modality, cfg.rebuild_queries)
        empty = [s for s, q in sets.items() if not q]
        if empty:
            raise SearchError(
                f"no {empty} queries could be built from '{run.dataset.name}'; lower "
                "queries.min_targets or raise queries.max_share."
            )
        s = cfg.search
        t0 = time.perf_counter()
        results = evaluate_run(
            run,
            sets,
            s.mapping,
            s.query_modality,
            s.embedding,
            s.top_n,
            cfg.batch_size,
            cfg.progress,
        )
    except (SearchError, *USER_ERRORS) as e:
        fail("emmkgr-eval-search", e)
    settings = {
        "run_dir": str(cfg.run_dir),
        "dataset": run.dataset.name,
        "search": OmegaConf.to_container(cfg.search, resolve=True),
        "queries": {**vars(qcfg), "counts": {k: len(v) for k, v in sets.items()}},
        "query_dir": str(cfg.query_dir),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    header, rows = results_table(results)
    table = markdown_table(header, rows)
    out = Path(cfg.out_dir)
    write_json(out / "search_results.json", {**results, "settings": settings})
    s = settings["search"]
    note = (
        f"E-MMKGR: mapping={s['mapping']}, query_modality={s['query_modality']}, "
        f"embedding={s['embedding']}; queries: {settings['queries']['counts']} "
        f"(seed {qcfg.seed}) from {cfg.query_dir}"
    )
    report = f"# Product search on {run.dataset.name}\n\n{table}\n\n{note}\n"
    write_text(out / "search_results.md", report)
    print(table)
    print(f"\n{note}\nwrote {out}/search_results.json and search_results.md")


if __name__ == "__main__":
    main()

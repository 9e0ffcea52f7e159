"""``emmkgr-search`` and ``emmkgr-similar``: product search and similar items on a trained run.

``emmkgr-search run_dir=<run> query="..." top_k=10`` answers a text query with the search that
``conf/search`` configures, the one ``emmkgr-eval-search`` evaluates. By default: the dense vector
baseline and BM25 fused (RRF), re-ranked by pseudo-relevance feedback in E-MMKGR's
:math:`H^{MM}` (``search.feedback``); ``search.scorer=cosine`` maps the query with the run's
:math:`f_{enc}` and :math:`f_{proj}` (``search.mapping``) and compares it with :math:`H^{MM}`
(Eq. 7), with the item's raw vectors carried in (``search.carry_raw``). These score every item.
With ``search.scorer=cosine search.carry_raw=0 search.fuse_bm25=false search.feedback=null`` (one
vector per query) the faiss index saved beside the run answers alone (``search_index.faiss``,
built on first use; ``search.index=hnsw`` for large catalogues).
``emmkgr-similar run_dir=<run> item=<id>`` lists the nearest items of an item. Both take
``category=`` and ``brand=`` filters (case-insensitive substrings), applied inside the search, and
print a table (``output=json`` for JSON).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from ..eval.search_queries import SearchQuery
from ..runs import load_run
from ..runs.search import RunSearches, open_index
from ..search import ItemFilter, ItemMeta, QueryEncoder, SearchError, VectorBaseline, similar_items, topk
from ..utils import markdown_table
from . import CONFIG_PATH, USER_ERRORS, fail

log = logging.getLogger("emmkgr-search")
METHODS = ("emmkgr", "vector_baseline")
OUTPUTS = ("table", "json")


def _check(cfg: DictConfig, prog: str) -> Path:
    """Fail fast, before anything is loaded, on settings that cannot work."""
    if cfg.output not in OUTPUTS:
        raise SearchError(f"output={cfg.output}: choose one of {OUTPUTS}.")
    if cfg.output == "json":  # keep stdout parseable: logs go there with the console logger
        root = logging.getLogger()
        root.setLevel(logging.WARNING)
        for handler in root.handlers:  # also records of loggers with their own level (bm25s: DEBUG)
            handler.setLevel(logging.WARNING)
    if not cfg.run_dir:
        raise SearchError(f"run_dir is not set: {prog} run_dir=<a folder written by emmkgr-train>.")
    run_dir = Path(cfg.run_dir)
    if not run_dir.is_dir():
        raise SearchError(f"run_dir={run_dir}: no such folder; give a run folder of emmkgr-train.")
    top_k = cfg.top_k
    if isinstance(top_k, bool) or not isinstance(top_k, int | float) or top_k != int(top_k) or top_k < 1:
        raise SearchError(f"top_k={top_k}: give a whole number of results, at least 1 (e.g. top_k=10).")
    return run_dir


def _item_filter(cfg: DictConfig) -> ItemFilter:
    return ItemFilter(category=cfg.get("category") or None, brand=cfg.get("brand") or None)


def _print(cfg: DictConfig, header: str, request: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    if cfg.output == "json":
        print(json.dumps({**request, "results": rows}, indent=2))
        return
    print(header)
    if not rows:
        print("no item passes the filters")
        return
    table = [[r["rank"], r["item_id"], _short(r["title"]), f"{r['score']:.4f}"] for r in rows]
    print(markdown_table(["rank", "item id", "title", "score"], table))


def _short(title: str | None, width: int = 80) -> str:
    title = (title or "").replace("|", "/")
    return title if len(title) <= width else title[: width - 3] + "..."


def run_search(cfg: DictConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer one query as ``conf/search.yaml`` describes it: (request, result rows)."""
    run_dir = _check(cfg, "emmkgr-search")
    if cfg.method not in METHODS:
        raise SearchError(f"method={cfg.method}: choose one of {METHODS}.")
    text = None if cfg.query is None else str(cfg.query)
    if cfg.query_vector is None and (text is None or not text.strip()):
        raise SearchError('query is empty: give a search phrase, e.g. query="wireless mouse".')
    scfg = cfg.search
    run = load_run(run_dir)
    catalog = run.dataset.catalog
    meta = partial(ItemMeta.from_catalog, catalog)
    index = open_index(run_dir, meta, scfg.embedding, scfg.index, scfg.rebuild_index)
    item_filter = _item_filter(cfg)
    allowed = item_filter.mask(index.meta) if item_filter.active else None
    configured = cfg.method == "emmkgr" and cfg.query_vector is None and not RunSearches.is_plain(scfg)
    if configured:  # the evaluated default: every item scored (the query encoded there), then filtered
        searches = RunSearches(run, [text], scfg.embedding, scfg.top_n, index=index)
        scores = searches.emmkgr(scfg)([SearchQuery("q", "cli", "cli", text, [])])[0]
        scores = np.where(allowed, scores, -np.inf) if allowed is not None else scores
        k = min(int(cfg.top_k), index.n_items)
        pos = topk.top_k(scores[None], k)[0]
        pos = pos[np.isfinite(scores[pos])]  # what the filter removed
        rows = index.results(scores[pos], pos)
    else:
        qenc = QueryEncoder.from_run(run, scfg.mapping, scfg.query_modality, scfg.top_n)
        if cfg.query_vector is not None:
            raw = qenc.raw_vectors(np.load(cfg.query_vector).reshape(1, -1))
            text = f"<vector {cfg.query_vector}>"
        else:
            raw = qenc.raw_text([text], qenc.text_modalities)
        if cfg.method == "emmkgr":
            mapped = {m: raw[m] for m in qenc.query_modalities} if cfg.query_vector is None else raw
            scores, pos = index.search(qenc.map(mapped), int(cfg.top_k), allowed)
        else:
            baseline = VectorBaseline.from_dataset(run.dataset, list(raw))
            base_allowed = None if allowed is None else allowed[: run.dataset.n_items]
            scores, pos = baseline.search(raw, int(cfg.top_k), base_allowed)
        rows = index.results(scores[0], pos[0])
    request = {
        "query": text,
        "method": cfg.method,
        "mapping": scfg.mapping,
        "search": describe(scfg) if configured else f"{scfg.mapping} mapping (faiss index)",
        "query_modality": scfg.query_modality,
        "embedding": scfg.embedding,
        "filters": {"category": item_filter.category, "brand": item_filter.brand},
        "top_k": int(cfg.top_k),
        "run_dir": str(run_dir),
    }
    return request, rows


def describe(scfg: DictConfig) -> str:
    """The configured E-MMKGR search in words, e.g. ``paper mapping + raw x2 + BM25 (RRF 60)``."""
    if scfg.scorer == "kg":
        what = f"KG scoring ({scfg.kg_node} query node)"
    elif scfg.scorer == "dense":
        what = "dense vector baseline"
    else:
        what = f"{scfg.mapping} mapping" + (f" + raw x{scfg.carry_raw:g}" if scfg.carry_raw else "")
    w = scfg.get("bm25_weight", 1.0)
    how = "z-scores" if scfg.get("fusion", "rrf") == "zscore" else f"RRF {scfg.rrf_k:g}"
    what += f" + BM25 ({how}" + (f", weight {w:g})" if w != 1 else ")") if scfg.fuse_bm25 else ""
    if scfg.get("feedback"):
        what += f" + feedback in {scfg.feedback} (top {scfg.feedback_k}, weight {scfg.feedback_weight:g}"
        keep = scfg.get("feedback_keep", 0)
        what += f", first {keep} kept)" if keep else ")"
    return what


def run_similar(cfg: DictConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The similar items of one item as ``conf/search.yaml`` describes it: (request, rows)."""
    run_dir = _check(cfg, "emmkgr-similar")
    if cfg.item is None or not str(cfg.item).strip():
        raise SearchError("item is not set: emmkgr-similar run_dir=<run> item=<an item id>.")
    scfg = cfg.search
    # the run is loaded only when the index must be built: a saved index holds the metadata
    meta = partial(_catalog_meta, run_dir)
    index = open_index(run_dir, meta, scfg.embedding, scfg.index, scfg.rebuild_index)
    item_filter = _item_filter(cfg)
    rows = similar_items(index, str(cfg.item), int(cfg.top_k), item_filter)
    pos = index.meta.position(str(cfg.item))
    request = {
        "item": index.meta.row(pos),
        "embedding": scfg.embedding,
        "filters": {"category": item_filter.category, "brand": item_filter.brand},
        "top_k": int(cfg.top_k),
        "run_dir": str(run_dir),
    }
    return request, rows


def _catalog_meta(run_dir: Path) -> ItemMeta:

    return ItemMeta.from_catalog(load_run(run_dir).dataset.catalog)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="search")
def search_main(cfg: DictConfig) -> None:
    try:
        request, rows = run_search(cfg)
    except (SearchError, *USER_ERRORS) as e:
        fail("emmkgr-search", e)
    filters = ItemFilter(**request["filters"]).describe()
    method = request["method"]
    if method == "emmkgr":
        method += f" ({request['search']})"
    header = f"{method} search for '{request['query']}'; filters: {filters}"
    _print(cfg, header, request, rows)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="search")
def similar_main(cfg: DictConfig) -> None:
    try:
        request, rows = run_similar(cfg)
    except (SearchError, *USER_ERRORS) as e:
        fail("emmkgr-similar", e)
    item, filters = request["item"], ItemFilter(**request["filters"]).describe()
    header = f"items similar to {item['item_id']} ({_short(item['title'], 60)}); filters: {filters}"
    _print(cfg, header, request, rows)


if __name__ == "__main__":
    search_main()

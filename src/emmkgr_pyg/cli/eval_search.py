"""``emmkgr-eval-search run_dir=<run>``: product search evaluated as in the paper (section 4.1).

Builds the fine- and coarse-grained query sets of ``queries.protocol`` (``leakfree``: from fields
the run indexes nowhere, one ``part``; ``lookup``: phrases of the indexed text) (seeded; saved as
JSONL in ``query_dir`` and reused while their settings and the text they come from match), or
reads the query sets a person wrote from ``query_file`` (JSONL: ``query`` and ``targets`` or
``category``; :func:`~emmkgr_pyg.eval.query_store.read_query_file`), ranks
every item for every query with E-MMKGR (the configured ``search``) and with BM25, the vector-based
baseline and their fusion, and writes ``search_results.json``
(``{"fine"|"coarse": {"emmkgr"|"bm25"|"vector_baseline"|"hybrid": {metric: value}}, "settings": ...}``)
and ``search_results.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ..eval.query_store import query_sets, read_query_file
from ..eval.search_eval import results_table
from ..eval.search_queries import QuerySetConfig
from ..runs import load_run
from ..runs.search import evaluate_run, leakfree_inputs
from ..search.errors import SearchError
from ..utils import markdown_table, write_json, write_text
from . import CONFIG_PATH, USER_ERRORS, fail


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval_search")
def main(cfg: DictConfig) -> None:
    try:
        if not cfg.run_dir:
            raise SearchError("run_dir is not set: emmkgr-eval-search run_dir=<a trained run>.")
        run = load_run(cfg.run_dir)
        qcfg = QuerySetConfig(**OmegaConf.to_container(cfg.queries, resolve=True))
        if cfg.query_file:  # a query set a person wrote: read, never built or cached
            sets = read_query_file(cfg.query_file, run.dataset.catalog)
            empty = []
        else:
            leakfree = leakfree_inputs(run) if qcfg.protocol == "leakfree" else None
            sets = query_sets(
                run.dataset, qcfg, cfg.query_dir, cfg.description_modality, cfg.rebuild_queries, leakfree
            )
            empty = [s for s, q in sets.items() if not q]
        if qcfg.protocol == "leakfree" and len(empty) < len(sets):
            for s in empty:  # a leak-free set needs a source the run does not index
                print(
                    f"emmkgr-eval-search: no leak-free {s} queries for this run ({_why(s)}).", file=sys.stderr
                )
        elif empty:
            raise SearchError(
                f"no {empty} queries could be built from '{run.dataset.name}'; lower "
                "queries.min_targets or raise queries.max_share."
            )
        t0 = time.perf_counter()
        results = evaluate_run(run, sets, cfg.search, cfg.batch_size, cfg.progress)
    except (SearchError, ValueError, *USER_ERRORS) as e:
        fail("emmkgr-eval-search", e)
    settings = {
        "run_dir": str(cfg.run_dir),
        "dataset": run.dataset.name,
        "search": OmegaConf.to_container(cfg.search, resolve=True),
        "queries": {
            **({"file": str(cfg.query_file)} if cfg.query_file else vars(qcfg)),
            "counts": {k: len(v) for k, v in sets.items()},
        },
        "query_dir": str(cfg.query_dir),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    header, rows = results_table(results)
    table = markdown_table(header, rows)
    out = Path(cfg.out_dir)
    write_json(out / "search_results.json", {**results, "settings": settings})
    s = settings["search"]
    how = (
        f"scorer=kg, kg_node={s['kg_node']}"
        if s["scorer"] == "kg"
        else "scorer=dense (the vector baseline, first stage)"
        if s["scorer"] == "dense"
        else f"mapping={s['mapping']}, carry_raw={s['carry_raw']}"
    )
    origin = (
        f"queries from {cfg.query_file}: {settings['queries']['counts']}"
        if cfg.query_file
        else f"queries ({qcfg.protocol}{', ' + qcfg.part if qcfg.protocol == 'leakfree' else ''}): "
        f"{settings['queries']['counts']} (seed {qcfg.seed}) from {cfg.query_dir}"
    )
    note = (
        f"E-MMKGR: {how}, query_modality={s['query_modality']}, fuse_bm25={s['fuse_bm25']}"
        + (f" ({s.get('fusion', 'rrf')}, weight {s.get('bm25_weight', 1.0)})" if s["fuse_bm25"] else "")
        + ", "
        + (
            f"feedback={s['feedback']} (k {s['feedback_k']}, weight {s['feedback_weight']}, "
            f"keep {s.get('feedback_keep', 0)}), "
            if s.get("feedback")
            else ""
        )
        + f"embedding={s['embedding']}; {origin}"
    )
    report = f"# Product search on {run.dataset.name}\n\n{table}\n\n{note}\n"
    write_text(out / "search_results.md", report)
    print(table)
    print(f"\n{note}\nwrote {out}/search_results.json and search_results.md")


def _why(query_set: str) -> str:
    if query_set == "coarse":
        return "it indexes category text: train it with modality.exclude=[attributes]"
    return "no held-out reviews, and it indexes the description: train it with modality.exclude=[description]"


if __name__ == "__main__":
    main()

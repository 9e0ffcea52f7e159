"""``emmkgr-eval-search run_dir=<run>``: product search evaluated as in the paper (section 4.1).

Builds the fine- and coarse-grained query sets from the run's catalogue (seeded; saved as JSONL in
``query_dir`` and reused while their settings and the catalogue's text match), ranks every item
for every query with E-MMKGR (the configured ``search`` mapping, cosine with the indexed
embedding) and with the vector-based baseline, and writes ``search_results.json``
(``{"fine"|"coarse": {"emmkgr"|"vector_baseline": {metric: value}}, "settings": ...}``) and
``search_results.md``.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ..eval.query_store import query_sets
from ..eval.search_eval import results_table
from ..eval.search_queries import QuerySetConfig
from ..runs import load_run
from ..runs.search import evaluate_run
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

"""Product-search quality on a trained run (paper section 4.1): E-MMKGR against the vector baseline
on the fine- and coarse-grained query sets, every query mapping, and diagnostics of why.

    python benchmarks/search_quality.py [--run /tmp/office_runs/emmkgr] [--run <another run> ...]

For each run (default: the Office E-MMKGR run), with the query sets of ``emmkgr-eval-search``
(default sizes and seed; saved under benchmarks/results/queries_<dataset>/ and reused):

- ``vector_baseline``: raw query embedding against each modality's raw features, best match;
- E-MMKGR for every ``mapping`` (paper, propagated) x ``query_modality`` (all, each text
  modality) x indexed embedding (H_mm_item, item, and ``mix``: the sum of both L2-normalised);
- diagnostics: ``oracle centroid`` (the query placed at the mean of its targets' embeddings: an
  upper reference for any single-vector mapping into that space, on coarse queries), the same in
  each raw modality's space, the baseline restricted to one modality, and ``fusion`` (baseline
  score + 0.1 x E-MMKGR score).

Coarse results are also given by kind (``coarse:category``, ``coarse:attribute``).

Prints the tables; writes benchmarks/results/search_quality.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from emmkgr_pyg.eval.query_store import query_sets
from emmkgr_pyg.eval.search_eval import METRIC_NAMES, evaluate
from emmkgr_pyg.eval.search_queries import QuerySetConfig, SearchQuery
from emmkgr_pyg.graph.knn import normalize_rows
from emmkgr_pyg.runs import load_run
from emmkgr_pyg.runs.artifacts import ITEM, MM_ITEM
from emmkgr_pyg.runs.search import run_embeddings
from emmkgr_pyg.search import ItemIndex, ItemMeta, QueryEncoder, VectorBaseline
from emmkgr_pyg.utils import markdown_table

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = ("propagated", "all", MM_ITEM)  # conf/search/default.yaml
FUSION_WEIGHT = 0.1


def bench_run(run_dir: str, qcfg: QuerySetConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    run = load_run(run_dir)
    ds = run.dataset
    sets = query_sets(ds, qcfg, RESULTS / f"queries_{ds.name}")
    base_enc = QueryEncoder.from_run(run, "paper", "all")
    texts = sorted({q.text for qs in sets.values() for q in qs})
    raw = base_enc.raw_text(texts, progress=True)
    row = {t: i for i, t in enumerate(texts)}
    mods = base_enc.text_modalities
    ids = ds.catalog.item_ids
    pos = {x: i for i, x in enumerate(ids)}

    def raw_of(batch: list[SearchQuery], modalities: list[str]) -> dict[str, np.ndarray]:
        rows = [row[q.text] for q in batch]
        return {m: raw[m][rows] for m in modalities}

    # the coarse set also by kind: category names and attribute phrases
    parts = dict(sets)
    for kind in sorted({q.kind for q in sets["coarse"]}):
        parts[f"coarse:{kind}"] = [q for q in sets["coarse"] if q.kind == kind]

    def score(name: str, fn) -> dict[str, dict[str, float]]:
        res = {s: evaluate(fn, qs, ids) for s, qs in parts.items()}
        print(f"  {name}: " + ", ".join(f"{s} MAP@10 {r['MAP@10']:.4f}" for s, r in res.items()))
        return res

    baseline = VectorBaseline.from_dataset(ds, mods)
    out: dict[str, Any] = {"counts": {s: len(q) for s, q in sets.items()}}
    out["vector_baseline"] = score("vector_baseline", lambda b: baseline.scores(raw_of(b, mods)))
    meta = ItemMeta.from_catalog(ds.catalog)
    indexes = {e: ItemIndex(run_embeddings(run_dir, e), meta, e) for e in (MM_ITEM, ITEM)}
    # a mix of both: the sum of the L2-normalised H^MM and H_item
    mix = normalize_rows(run_embeddings(run_dir, MM_ITEM)) + normalize_rows(run_embeddings(run_dir, ITEM))
    indexes["mix"] = ItemIndex(mix, meta, "mix")
    variants: dict[str, Any] = {}
    for mapping in ("paper", "propagated"):
        for qm in ["all", *mods]:
            qe = QueryEncoder.from_run(run, mapping, qm)
            for emb, index in indexes.items():
                name = f"{mapping}/{qm}/{emb}"
                variants[name] = score(
                    name, lambda b, qe=qe, index=index: index.scores(qe.map(raw_of(b, qe.query_modalities)))
                )
    out["emmkgr"] = variants
    h = normalize_rows(run_embeddings(run_dir, MM_ITEM))

    def oracle(x: np.ndarray):
        def fn(batch: list[SearchQuery]) -> np.ndarray:
            c = np.stack([x[[pos[t] for t in q.targets]].mean(0) for q in batch])
            return normalize_rows(c) @ x.T

        return fn

    diag = {f"oracle centroid {MM_ITEM}": score(f"oracle {MM_ITEM}", oracle(h))}
    for m in mods:
        single = VectorBaseline.from_dataset(ds, [m])
        diag[f"vector baseline, {m} only"] = score(
            f"baseline {m} only", lambda b, single=single, m=m: single.scores(raw_of(b, [m]))
        )
    for m in mods:
        mod = ds.modalities[m]
        x = np.zeros((ds.n_items, mod.features.shape[1]), dtype=np.float32)
        x[mod.item_index] = normalize_rows(mod.features)
        diag[f"oracle centroid raw {m}"] = score(f"oracle raw {m}", oracle(x))
    qe = QueryEncoder.from_run(run, *DEFAULT[:2])
    diag[f"fusion baseline + {FUSION_WEIGHT} x E-MMKGR"] = score(
        "fusion",
        lambda b: (
            baseline.scores(raw_of(b, mods))
            + FUSION_WEIGHT * indexes[MM_ITEM].scores(qe.map(raw_of(b, qe.query_modalities)))
        ),
    )
    out["diagnostics"] = diag
    out["model"] = run.results.get("model")
    out["dataset"] = ds.name
    out["model_config"] = run.results["config"]["model"]["net"]
    out["test/Recall@20"] = run.results.get("test/Recall@20")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def tables(run_dir: str, res: dict[str, Any]) -> str:
    header = ["query set", "method", *METRIC_NAMES]
    default = "/".join(DEFAULT)
    main_rows = []
    for s in ("fine", "coarse"):
        main_rows.append([s, f"E-MMKGR ({default})", *(res["emmkgr"][default][s][m] for m in METRIC_NAMES)])
        main_rows.append([s, "vector baseline", *(res["vector_baseline"][s][m] for m in METRIC_NAMES)])
    rel = {
        s: res["emmkgr"][default][s]["MAP@10"] / res["vector_baseline"][s]["MAP@10"] - 1
        for s in ("fine", "coarse")
    }
    cols = [s for s in res["vector_baseline"] if s != "fine"]
    all_rows = [
        [name, v["fine"]["MAP@10"], *(v[s]["MAP@10"] for s in cols), v["fine"]["MRR"], v["coarse"]["MRR"]]
        for name, v in [
            ("vector_baseline", res["vector_baseline"]),
            *res["emmkgr"].items(),
            *res["diagnostics"].items(),
        ]
    ]
    return "\n".join(
        [
            f"## {res['dataset']} ({run_dir}; queries {res['counts']})",
            "",
            markdown_table(header, main_rows),
            "",
            f"E-MMKGR vs baseline, MAP@10: fine {rel['fine']:+.1%}, coarse {rel['coarse']:+.1%}",
            "",
            markdown_table(
                ["variant", "fine MAP@10", *(f"{c} MAP@10" for c in cols), "fine MRR", "coarse MRR"], all_rows
            ),
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", action="append", default=None, help="a trained run (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    runs = args.run or ["/tmp/office_runs/emmkgr"]
    qcfg = QuerySetConfig(seed=args.seed)
    results = {"query_settings": vars(qcfg), "runs": {}}
    report = []
    for run_dir in runs:
        print(f"{run_dir}:")
        res = bench_run(run_dir, qcfg)
        results["runs"][run_dir] = res
        report.append(tables(run_dir, res))
    print("\n" + "\n\n".join(report))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search_quality.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "search_quality.md").write_text("\n\n".join(report) + "\n")
    print(f"\nwrote {RESULTS / 'search_quality.json'}")


if __name__ == "__main__":
    main()

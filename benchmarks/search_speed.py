"""Product-search speed: one query end to end, a batch of queries, and the index build.

    python benchmarks/search_speed.py [--office-run /tmp/office_runs/emmkgr] [--clothing-run DIR]
                                      [--queries 200] [--batch 1000]

Two catalogues:

- **office**: a trained E-MMKGR run on Amazon Office (2,420 items; MiniLM features), loaded with
  ``load_run``;
- **clothing**: 23,033 items at Amazon-Clothing size. With ``--clothing-run`` a trained run of
  ``dataset=synthetic_clothing``; without, the generated catalogue is built here (item text
  through the hashing encoder at 384-d, MiniLM's size; a 4096-d image; HNSW kNN as at training)
  with an untrained E-MMKGR of the same shapes: search speed depends on the shapes, not on the
  weights. Queries always go through MiniLM, the text encoder of the real runs.

Measured, for the ``paper`` and ``propagated`` query mappings:

- one query end to end (f_enc + mapping + top-10 through the exact faiss index), p50 and p99 over
  ``--queries`` queries after a warm-up, and its parts (encode, map, search, a filtered search);
- throughput of one batch of ``--batch`` queries (encode in MiniLM batches of 64, map, search);
- index build time (``IndexFlatIP`` and ``IndexHNSWFlat``), and the vector baseline per query.

Queries are 3-6 word windows of item titles (seeded). torch, faiss (OpenMP) and numpy's BLAS run
``--threads`` threads (default 1: one short query gains nothing from intra-op parallelism, and on
a shared machine the threads wait for each other. Measured under load on 2 cores: MiniLM on one
query 3x slower with 2 threads than with 1; a faiss flat search of one query over 23k x 64 took
16 ms with 2 OpenMP threads, 0.2 ms with 1). The load average is recorded with the results.
Prints a table; writes benchmarks/results/search_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from emmkgr_pyg.data.encoders import HashingTextEncoder, SentenceTransformerEncoder
from emmkgr_pyg.data.features import encode_dataset, resolve_modalities
from emmkgr_pyg.data.synthetic import SyntheticReader
from emmkgr_pyg.graph import InteractionGraph, KNNBuilder, build_emmkg
from emmkgr_pyg.nn import EMMKGR, InductivePropagator
from emmkgr_pyg.runs import load_run
from emmkgr_pyg.runs.search import run_embeddings
from emmkgr_pyg.search import ItemFilter, ItemIndex, ItemMeta, QueryEncoder, VectorBaseline

RESULTS = Path(__file__).resolve().parent / "results"
MAPPINGS = ("paper", "propagated")


class Setup:
    """What a search needs: dataset, encoder, kg, item embeddings, text f_enc."""

    def __init__(self, name: str, dataset, encoder, kg, h_mm: np.ndarray, note: str) -> None:
        self.name, self.dataset, self.encoder, self.kg = name, dataset, encoder, kg
        self.h_mm, self.note = h_mm, note
        self.minilm = SentenceTransformerEncoder(model="bundled")
        self.kinds = {m: dataset.modalities[m].kind for m in encoder.modalities}

    def query_encoder(self, mapping: str) -> QueryEncoder:
        f_enc = {m: (self.minilm if k == "text" else None) for m, k in self.kinds.items()}
        prop = InductivePropagator(self.encoder, self.kg, top_n=10) if mapping == "propagated" else None
        return QueryEncoder(self.encoder, f_enc, self.kinds, mapping, "all", prop)


def from_run(name: str, run_dir: str) -> Setup:
    run = load_run(run_dir)
    note = f"trained run {run_dir}"
    return Setup(name, run.dataset, run.model.encoder, run.kg, run_embeddings(run_dir), note)


def generated_clothing() -> Setup:
    raw = SyntheticReader(n_users=39387, n_items=23033, n_interactions=278677, image_dim=4096).read(
        None, "clothing"
    )
    cfg = {"text_encoder": HashingTextEncoder(dim=384), "include": None, "exclude": [], "extra": {}}
    ds, _ = encode_dataset(raw, resolve_modalities(raw, cfg), progress=False)
    knn = KNNBuilder(index="hnsw", symmetric=True, progress=False)
    kg = build_emmkg(ds, top_n=10, knn=knn)
    torch.manual_seed(0)
    model = EMMKGR(InteractionGraph.from_dataset(ds), kg).eval()
    with torch.no_grad():
        h = model.encoder.propagate()[: ds.n_items].numpy()
    note = "generated, hashing 384-d text features, untrained E-MMKGR (same shapes)"
    return Setup("clothing", ds, model.encoder, kg, h, note)


def title_queries(dataset, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    titles = [t for t in dataset.catalog.title if t and len(t.split()) >= 3]
    out = []
    for t in rng.choice(titles, size=n, replace=len(titles) < n):
        words = t.split()
        w = int(rng.integers(3, min(6, len(words)) + 1))
        s = int(rng.integers(0, len(words) - w + 1))
        out.append(" ".join(words[s : s + w]))
    return out


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def bench(setup: Setup, n_queries: int, batch: int) -> dict[str, Any]:
    ds = setup.dataset
    meta = ItemMeta.from_catalog(ds.catalog)
    out: dict[str, Any] = {"items": ds.n_items, "note": setup.note, "dim": int(setup.h_mm.shape[1])}
    t0 = time.perf_counter()
    index = ItemIndex(setup.h_mm, meta)
    out["index_build_exact_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ItemIndex(setup.h_mm, meta, kind="hnsw")
    out["index_build_hnsw_s"] = time.perf_counter() - t0
    queries = title_queries(ds, n_queries)
    top_category = ds.catalog.categories[0][0] if ds.catalog.categories[0] else ""
    allowed = ItemFilter(category=top_category).mask(meta)
    texts = [m for m, k in setup.kinds.items() if k == "text"]
    baseline = VectorBaseline.from_dataset(ds, texts)
    for mapping in MAPPINGS:
        qe = setup.query_encoder(mapping)
        qe.encode_text(["warm-up query"])  # loads MiniLM
        total, enc, mapped, search, filtered, base = [], [], [], [], [], []
        for q in queries:
            t0 = time.perf_counter()
            raw = qe.raw_text([q], qe.query_modalities)
            t1 = time.perf_counter()
            h = qe.map(raw)
            t2 = time.perf_counter()
            index.search(h, 10)
            t3 = time.perf_counter()
            total.append(t3 - t0)
            enc.append(t1 - t0)
            mapped.append(t2 - t1)
            search.append(t3 - t2)
            t4 = time.perf_counter()
            index.search(h, 10, allowed)
            filtered.append(time.perf_counter() - t4)
            t5 = time.perf_counter()
            baseline.search(raw, 10)
            base.append(time.perf_counter() - t5)
        many = title_queries(ds, batch, seed=1)
        t0 = time.perf_counter()
        raw = qe.raw_text(many, qe.query_modalities)
        t1 = time.perf_counter()
        h = qe.map(raw)
        t2 = time.perf_counter()
        index.search(h, 10)
        t3 = time.perf_counter()
        out[mapping] = {
            "end_to_end": percentiles(total),
            "encode": percentiles(enc),
            "map": percentiles(mapped),
            "search_top10": percentiles(search),
            "search_top10_filtered": percentiles(filtered),
            "filter_share_of_items": float(allowed.mean()),
            "vector_baseline_search": percentiles(base),
            "batch": {
                "queries": batch,
                "seconds": t3 - t0,
                "queries_per_s": batch / (t3 - t0),
                "encode_s": t1 - t0,
                "map_s": t2 - t1,
                "search_s": t3 - t2,
            },
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--office-run", default="/tmp/office_runs/emmkgr")
    p.add_argument("--clothing-run", default=None)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    threadpool_limits(args.threads)  # numpy's BLAS (the vector baseline, normalisation)
    env = {
        "torch_threads": torch.get_num_threads(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    print(f"torch threads {env['torch_threads']}, faiss threads {env['faiss_threads']}")
    setups = [lambda: from_run("office", args.office_run)]
    setups.append(
        (lambda: from_run("clothing", args.clothing_run)) if args.clothing_run else generated_clothing
    )
    results: dict[str, Any] = {"env": env, "settings": vars(args)}
    for make in setups:
        setup = make()
        print(f"{setup.name}: {setup.dataset.n_items} items ({setup.note})")
        results[setup.name] = bench(setup, args.queries, args.batch)
    names = [n for n in ("office", "clothing") if n in results]
    header = "| | " + " | ".join(f"{n} {m}" for n in names for m in MAPPINGS) + " |"
    print("\n" + header + "\n|---|" + "---|" * (len(names) * len(MAPPINGS)))
    rows = [
        ("one query end to end p50 (ms)", ("end_to_end", "p50_ms")),
        ("one query end to end p99 (ms)", ("end_to_end", "p99_ms")),
        ("  encode (MiniLM) p50 (ms)", ("encode", "p50_ms")),
        ("  map into the item space p50 (ms)", ("map", "p50_ms")),
        ("  top-10 search p50 (ms)", ("search_top10", "p50_ms")),
        ("  top-10 search, filtered, p50 (ms)", ("search_top10_filtered", "p50_ms")),
        ("vector baseline search p50 (ms)", ("vector_baseline_search", "p50_ms")),
        ("batch of queries: queries per second", ("batch", "queries_per_s")),
        ("batch: encode (s)", ("batch", "encode_s")),
        ("batch: map (s)", ("batch", "map_s")),
        ("batch: search (s)", ("batch", "search_s")),
    ]
    for label, (a, b) in rows:
        vals = [results[n][m][a][b] for n in names for m in MAPPINGS]
        print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    for n in names:
        r = results[n]
        print(
            f"\n{n} ({r['items']} items, d={r['dim']}): index build exact {r['index_build_exact_s']:.4f} s, "
            f"HNSW {r['index_build_hnsw_s']:.3f} s"
        )
    env["load_average_at_end"] = os.getloadavg()
    print(f"load average: start {env['load_average_at_start']}, end {env['load_average_at_end']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search_speed.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS / 'search_speed.json'}")


if __name__ == "__main__":
    main()

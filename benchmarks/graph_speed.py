"""E-MMKG construction and propagation speed at Amazon-Clothing scale, side by side in one run.

    python benchmarks/graph_speed.py [--items 23033] [--big-items 200000] [--repeats 3]

1. exact kNN (top-10) through KNNBuilder vs a bare faiss IndexFlatIP vs torch matmul + topk in
   chunks, on a 4096-d "image" and a 384-d text modality (identical neighbours checked);
2. the approximate indexes (HNSW, IVF, PCA + re-ranking) vs exact: time and neighbour recall@10;
3. peak memory (max RSS of a fresh process) of the graph build at two catalogue sizes;
4. full-graph LightGCNConv forward + backward on the E-MMKG vs PyG's LGConv with edge_index.

Features are generated (the synthetic catalogue at Clothing scale: a 4096-d image vector from visual
attributes; text modalities through the hashing encoder at 384-d). Prints a table, writes
benchmarks/results/graph_speed.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def clothing_features(n_items: int, seed: int = 0) -> dict[str, np.ndarray]:
    from emmkgr_pyg.data.encoders import HashingTextEncoder
    from emmkgr_pyg.data.synthetic import SyntheticReader

    n_users = int(n_items * 39387 / 23033)
    n_inter = int(n_items * 278677 / 23033)
    ds = SyntheticReader(
        n_users=n_users, n_items=n_items, n_interactions=n_inter, image_dim=4096, seed=seed
    ).read(None, "clothing")
    enc = HashingTextEncoder(dim=384)
    feats = {"image": ds.modalities["image"].features}
    for m in ("title", "description"):
        feats[m] = enc.encode(ds.modalities[m].raw, progress=False)
    return feats, ds


def bare_faiss(x: np.ndarray, k: int) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, nbr = index.search(x, k + 1)
    return nbr


def torch_topk(x: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    t = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
    out = []
    for s in range(0, t.size(0), chunk):
        sim = t[s : s + chunk] @ t.t()
        sim[torch.arange(sim.size(0)), torch.arange(s, s + sim.size(0))] = -torch.inf
        out.append(torch.topk(sim, k, dim=1).indices)
    return torch.cat(out).numpy()


def knn_section(feats: dict[str, np.ndarray], repeats: int) -> list[dict]:
    from emmkgr_pyg.graph.knn import KNNBuilder

    rows = []
    for m in ("image", "title"):
        x = feats[m]
        ours_t, (nbr, _) = best_of(lambda x=x: KNNBuilder(progress=False).neighbors(x, 10), repeats)
        bare_t, bare = best_of(lambda x=x: bare_faiss(x, 10), repeats)
        torch_t, tk = best_of(lambda x=x: torch_topk(x, 10), max(1, repeats - 1))
        same_set = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(nbr, tk)])
        rows.append(
            {
                "modality": m,
                "n": len(x),
                "dim": x.shape[1],
                "ours_s": ours_t,
                "bare_faiss_s": bare_t,
                "torch_topk_s": torch_t,
                "ours_over_bare": ours_t / bare_t,
                "torch_over_ours": torch_t / ours_t,
                "neighbour_agreement_with_torch": float(same_set),
            }
        )
        for index in ("hnsw", "ivf", "pca"):
            t, (approx, _) = best_of(
                lambda x=x, index=index: KNNBuilder(index=index, progress=False).neighbors(x, 10), repeats
            )
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, nbr)])
            rows.append(
                {
                    "modality": m,
                    "n": len(x),
                    "dim": x.shape[1],
                    "index": index,
                    "seconds": t,
                    "exact_over_approx": ours_t / t,
                    "recall@10": float(recall),
                }
            )
    return rows


def memory_child(n_items: int, index: str) -> None:
    """Run in a fresh process: build the E-MMKG of a text-only catalogue of ``n_items`` items
    (3 modalities x 384-d) and print the peak memory of the build itself."""
    from emmkgr_pyg.data.encoders import HashingTextEncoder
    from emmkgr_pyg.data.synthetic import SyntheticReader
    from emmkgr_pyg.graph.emmkg import build_emmkg
    from emmkgr_pyg.graph.knn import KNNBuilder
    from emmkgr_pyg.utils import peak_rss_mib, reset_peak_rss

    n_users = max(200, n_items // 20)  # interactions do not enter the E-MMKG
    ds = SyntheticReader(n_users=n_users, n_items=n_items, n_interactions=8 * n_users, image_dim=8).read(
        None, "mem"
    )
    enc = HashingTextEncoder(dim=384)
    for m in ("title", "description", "review"):
        mod = ds.modalities[m]
        ds.catalog.modalities[m] = mod.with_features(enc.encode(mod.raw, progress=False))
    del ds.catalog.modalities["image"]
    feature_mib = sum(m.features.nbytes for m in ds.modalities.values()) / 2**20
    reset_peak_rss()
    before = peak_rss_mib()
    t0 = time.perf_counter()
    data = build_emmkg(ds, top_n=10, knn=KNNBuilder(index=index, symmetric=True, progress=False))
    seconds = time.perf_counter() - t0
    peak = peak_rss_mib()
    edges = sum(int(data[et].edge_index.size(1)) for et in data.edge_types)
    print(
        json.dumps(
            {
                "n_items": n_items,
                "index": index,
                "rss_before_build_mib": before,
                "peak_rss_mib": peak,
                "build_extra_mib": peak - before,
                "feature_mib": feature_mib,
                "build_seconds": seconds,
                "edges": edges,
            }
        )
    )


def memory_section(sizes: list[int], index: str) -> list[dict]:
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(n), "--index", index],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def propagation_section(feats_ds, repeats: int) -> dict:
    from torch_geometric.nn import LGConv

    from emmkgr_pyg.graph.emmkg import build_emmkg
    from emmkgr_pyg.graph.knn import KNNBuilder
    from emmkgr_pyg.graph.triples import kg_view
    from emmkgr_pyg.nn.conv import LightGCNConv

    feats, ds = feats_ds
    for m in ("title", "description"):
        ds.catalog.modalities[m] = ds.modalities[m].with_features(feats[m])
    del ds.catalog.modalities["review"]
    data = build_emmkg(ds, top_n=10, knn=KNNBuilder(index="hnsw", symmetric=True, progress=False))
    view = kg_view(data)
    ei = view.edge_index
    x = torch.randn(view.num_nodes, 64, requires_grad=True)
    out = {"nodes": view.num_nodes, "edges": int(ei.size(1)), "layers": 2}

    def run(conv):
        def step():
            h, acc = x, x
            for _ in range(2):
                h = conv(h, ei)
                acc = acc + h
            (acc / 3).square().sum().backward()

        step()  # warm-up (and the cached adjacency)
        return best_of(lambda: [step() for _ in range(5)], repeats)[0] / 5

    for name, conv in (
        ("LightGCNConv_torch", LightGCNConv(cached=True, backend="torch")),
        ("LightGCNConv_torch_sparse", LightGCNConv(cached=True, backend="torch_sparse")),
        ("PyG_LGConv", LGConv()),
    ):
        try:
            out[f"{name}_ms"] = 1000 * run(conv)
        except ValueError as e:  # torch-sparse not installed
            out[f"{name}_ms"] = None
            out[f"{name}_error"] = str(e)
    out["LGConv_over_ours"] = out["PyG_LGConv_ms"] / out["LightGCNConv_torch_ms"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=23033)
    p.add_argument("--big-items", type=int, default=200000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory-index", default="ivf", help="kNN index of the memory section")
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--index", default="ivf", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.index)
        return
    torch.manual_seed(0)
    t0 = time.perf_counter()
    feats_ds = clothing_features(args.items)
    print(
        f"generated {args.items} items in {time.perf_counter() - t0:.1f} s; threads: torch {torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}"
    )
    knn = knn_section(feats_ds[0], args.repeats)
    prop = propagation_section(feats_ds, args.repeats)
    mem = memory_section([args.items, args.big_items], args.memory_index)
    result = {"knn": knn, "propagation": prop, "memory": mem, "items": args.items}

    print("\nexact kNN, top-10 (seconds, best of repeats)")
    print(
        "| modality | n x dim | ours | bare IndexFlatIP | torch matmul+topk | ours / bare | torch / ours | agreement with torch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in knn:
        if "ours_s" in r:
            print(
                f"| {r['modality']} | {r['n']} x {r['dim']} | {r['ours_s']:.2f} | {r['bare_faiss_s']:.2f} | {r['torch_topk_s']:.2f} | "
                f"{r['ours_over_bare']:.3f} | {r['torch_over_ours']:.2f} | {r['neighbour_agreement_with_torch']:.4f} |"
            )
    print("\napproximate kNN")
    print("| modality | index | seconds | exact / approximate | recall@10 |")
    print("|---|---|---|---|---|")
    for r in knn:
        if "index" in r:
            print(
                f"| {r['modality']} | {r['index']} | {r['seconds']:.2f} | {r['exact_over_approx']:.1f} | {r['recall@10']:.4f} |"
            )
    print("\nfull-graph propagation, 2 layers, forward + backward (ms)")
    print(json.dumps(prop, indent=1))
    print("\npeak memory of the graph build (fresh process, 3 text modalities x 384-d)")
    print(
        "| items | index | features MiB | resident before MiB | peak during build MiB | build extra MiB | build s | edges |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in mem:
        print(
            f"| {r['n_items']} | {r['index']} | {r['feature_mib']:.0f} | {r['rss_before_build_mib']:.0f} | "
            f"{r['peak_rss_mib']:.0f} | {r['build_extra_mib']:.0f} | {r['build_seconds']:.1f} | {r['edges']} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "graph_speed.json").write_text(json.dumps(result, indent=2))
    print(f"\nwrote {RESULTS / 'graph_speed.json'}")


if __name__ == "__main__":
    main()

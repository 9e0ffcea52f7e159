"""What MMRec's mean-filling of missing modality rows does to the baselines' kNN item graphs.

    python benchmarks/mean_filled_rows.py [--dataset amazon_office] [--k 10]

The baselines (FREEDOM, LATTICE, BM3, DualGNN, GRCN, LGMRec, and E-MMKGR's ``item_graph=knn``)
read one feature row per item per modality (:func:`emmkgr_pyg.graph.item_graph.
dense_modal_features`): an item lacking a modality gets that modality's mean, MMRec's rule for
missing images. All such rows are identical, so in a top-k cosine graph each of them has only other
mean-filled rows as neighbours (ties, broken by position) and they pull in-edges from observed
items. Per modality this prints the share of mean-filled items, how many of their neighbours are
mean-filled, how many edges of observed items end in a mean-filled row and how concentrated the
in-degrees are; writes ``benchmarks/results/mean_filled_rows.json``. No training: a diagnostic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_module

from emmkgr_pyg.data.prepared import prepare_dataset
from emmkgr_pyg.utils import markdown_table

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASET_ARGS = {"amazon_office": [f"dataset.root={SHARED / 'amazon-office-2014'}"]}


def diagnose(features: np.ndarray, item_index: np.ndarray, n_items: int, k: int) -> dict[str, float]:
    """The mean-filled rows' effect on the top-``k`` cosine graph of one modality (self excluded)."""
    x = features.astype(np.float32)
    dense = np.repeat(x.mean(0, keepdims=True), n_items, 0)
    dense[item_index] = x
    missing = np.ones(n_items, bool)
    missing[item_index] = False
    xn = dense / np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)
    sim = xn @ xn.T
    np.fill_diagonal(sim, -np.inf)
    top = np.argpartition(-sim, k, axis=1)[:, :k]
    indeg = np.bincount(top.ravel(), minlength=n_items)
    return {
        "mean_filled_share": float(missing.mean()),
        "neighbours_of_mean_filled_that_are_mean_filled": float(missing[top[missing]].mean())
        if missing.any()
        else float("nan"),
        "edges_of_observed_items_into_mean_filled": float(missing[top[~missing]].mean()),
        "max_in_degree": int(indeg.max()),
        "in_edge_share_of_top10_items": float(np.sort(indeg)[-10:].sum() / indeg.sum()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="amazon_office")
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args()
    with initialize_config_module("emmkgr_pyg.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"dataset={args.dataset}", *DATASET_ARGS.get(args.dataset, [])])
    ds, _ = prepare_dataset(cfg.dataset, cfg.modality, cfg.cache_dir, progress=False)
    out = {m: diagnose(mod.features, mod.item_index, ds.n_items, args.k) for m, mod in ds.modalities.items()}
    cols = list(next(iter(out.values())))
    rows = [[m] + [f"{v[c]:.3f}" if isinstance(v[c], float) else v[c] for c in cols] for m, v in out.items()]
    print(markdown_table(["modality", *cols], rows))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "mean_filled_rows.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({args.dataset: {"k": args.k, "modalities": out}}, indent=2))
    tmp.replace(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

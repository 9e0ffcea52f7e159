"""``emmkgr-build-graph dataset=<name> ... out_dir=<dir>``: the E-MMKG as ``graph.pt``
(``torch.save`` of the HeteroData) and ``graph_stats.json`` (node and edge counts, kNN times)."""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from ..data.prepared import prepare_dataset
from ..graph.emmkg import graph_stats
from ..runs import build_graph
from ..utils import atomic_path, markdown_table, write_json
from . import CONFIG_PATH, exit_on_user_error


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="build_graph")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error("emmkgr-build-graph"):
        dataset, _ = prepare_dataset(cfg.dataset, cfg.modality, cfg.cache_dir, progress=cfg.progress)
        t0 = time.perf_counter()
        data = build_graph(dataset, cfg.graph)
    stats = {**graph_stats(data), "build_seconds": round(time.perf_counter() - t0, 3)}
    out = Path(cfg.out_dir)
    with atomic_path(out / "graph.pt") as tmp:
        torch.save(data, tmp)
    write_json(out / "graph_stats.json", stats)
    print(markdown_table(["node type", "nodes"], [[k, v] for k, v in stats["nodes"].items()]))
    print()
    print(markdown_table(["edge type", "edges"], [[k, v] for k, v in stats["edges"].items()]))
    knn = ", ".join(f"{m} {s:.2f} s" for m, s in stats["knn_seconds"].items())
    print(f"\nkNN: {knn}; built in {stats['build_seconds']:.2f} s; wrote {out}/graph.pt")


if __name__ == "__main__":
    main()

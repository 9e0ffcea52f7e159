"""Learned edge values on a fixed graph: ``nn.edge_ops`` against message passing, side by side.

    python benchmarks/edge_ops_speed.py [--repeats 20] [--dim 64]

GRCN (routing, refinement, propagation on the refined graph) and LATTICE (its learned item graph)
multiply by edge values that require grad. PyG's message passing gathers ``x[src]`` into an
``[E, d]`` tensor, weighs it and scatters it (and the backward does the same); ``weighted_spmm``
builds a CSR matrix from the values and uses ``torch.sparse.mm``, its value gradient an SDDMM
(``torch.sparse.sampled_addmm``). Timed forward + backward (gradients of values and features) at
two sizes of a user-item graph in both directions: Office's (4,905 users, 2,420 items, 40,877
interactions) and Amazon Clothing's (39,387 users, 23,033 items, 278,677 interactions), random
edges of those counts. Also the per-edge inner product (``edge_dot`` against gather, multiply,
sum). Prints a table; writes benchmarks/results/edge_ops_speed.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# isort: off
import emmkgr_pyg  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

# isort: on
import torch
from torch_geometric.utils import scatter

from emmkgr_pyg.nn.edge_ops import EdgePattern, edge_dot, weighted_spmm

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {"office": (4905, 2420, 40877), "clothing": (39387, 23033, 278677)}


def seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def measure(n_users: int, n_items: int, n_inter: int, dim: int, repeats: int) -> dict:
    """Both operations, both ways, on a random user-item graph of these counts (both directions)."""
    g = torch.Generator().manual_seed(0)
    user = torch.randint(n_users, (n_inter,), generator=g)
    item = torch.randint(n_items, (n_inter,), generator=g) + n_users
    src, dst = torch.cat([user, item]), torch.cat([item, user])
    n = n_users + n_items
    x = torch.randn(n, dim, generator=g, requires_grad=True)
    w = torch.rand(src.numel(), generator=g, requires_grad=True)
    pattern = EdgePattern(torch.stack([src, dst]), n)

    def mp_spmm():
        (scatter(w.view(-1, 1) * x[src], dst, 0, n, "sum").sum()).backward()

    def ops_spmm():
        weighted_spmm(pattern, w, x).sum().backward()

    def mp_dot():
        ((x[dst] * x[src]).sum(-1) * w.detach()).sum().backward()

    def ops_dot():
        (edge_dot(pattern, x, x) * w.detach()).sum().backward()

    rows: dict = {"edges": src.numel(), "nodes": n}
    for op, (a, b) in {
        "weighted aggregation": (mp_spmm, ops_spmm),
        "edge inner product": (mp_dot, ops_dot),
    }.items():
        ta, tb = seconds(a, repeats), seconds(b, repeats)
        rows[op] = {"message_passing_ms": 1e3 * ta, "edge_ops_ms": 1e3 * tb, "speedup": ta / tb}
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--dim", type=int, default=64)
    args = p.parse_args()
    out: dict = {"threads": torch.get_num_threads(), "dim": args.dim, "repeats": args.repeats}
    print(f"{out['threads']} threads, d = {args.dim}, forward + backward, {args.repeats} repeats each")
    print(
        "\n| graph | edges | op | message passing (ms) | edge_ops (ms) | speed-up |\n|---|---|---|---|---|---|"
    )
    for name, size in SIZES.items():
        out[name] = rows = measure(*size, args.dim, args.repeats)
        for op in ("weighted aggregation", "edge inner product"):
            r = rows[op]
            print(
                f"| {name} | {rows['edges']:,} | {op} | {r['message_passing_ms']:.1f} | "
                f"{r['edge_ops_ms']:.1f} | {r['speedup']:.1f}x |"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "edge_ops_speed.json").write_text(json.dumps(out, indent=2))
    print(f"\nwrote {RESULTS / 'edge_ops_speed.json'}")


if __name__ == "__main__":
    main()

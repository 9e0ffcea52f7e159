"""Where one E-MMKGR training step spends its time, full vs sampled propagation (torch.profiler).

    python benchmarks/profile_step.py [--fanout 10,5] [--sampler torch] [--top 5]

At Amazon-Clothing scale (generated: 39,387 users, 23,033 items, 278,677 interactions; hashing
384-d text, 4096-d image, as ``benchmarks/train_speed.py``): one warm-up step, then one profiled
step (BPR + KG loss, batch 2048, forward and backward and Adam) in each mode. Prints the top
operators by self CPU time per mode and the step's wall time; writes
benchmarks/results/profile_step.json.
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
from torch.profiler import ProfilerActivity, profile

from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph import InteractionGraph, KNNBuilder, build_emmkg, kg_view
from emmkgr_pyg.nn import EMMKGR
from emmkgr_pyg.train import TrainConfig, Trainer
from emmkgr_pyg.train.sampled import SampledTrainer

RESULTS = Path(__file__).resolve().parent / "results"


def clothing():
    from train_speed import clothing as make  # the same generated dataset as the speed benchmark

    return make()[0]


def one_step(trainer) -> None:
    users, pos, neg = next(iter(trainer.bpr))
    batch = next(trainer.kg.cycle())
    if isinstance(trainer, SampledTrainer):
        losses = trainer.batch_losses(users, pos, neg, batch)
    else:
        emb = trainer.model.embed()
        losses = trainer.model.rec_losses(emb, users, pos, neg)
        losses.update(trainer.model.kg_losses(emb, batch))
    trainer._step(trainer.optimizer, losses, {})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fanout", default="10,5")
    p.add_argument("--sampler", default="torch")
    p.add_argument("--top", type=int, default=5)
    args = p.parse_args()
    ds = clothing()
    inter = InteractionGraph.from_dataset(ds)
    kg = build_emmkg(ds, top_n=10, knn=KNNBuilder(index="hnsw", symmetric=True, progress=False))
    view = kg_view(kg)
    ev = RankingEvaluator(inter, inter.user[:1].numpy(), inter.item[:1].numpy())
    fanout = [int(f) for f in args.fanout.split(",")]
    modes = {
        "full": (Trainer, {}),
        f"sampled (fanout {args.fanout}, {args.sampler})": (
            SampledTrainer,
            {"propagation": "sampled", "fanout": fanout, "sampler": args.sampler},
        ),
    }
    print(f"torch threads: {torch.get_num_threads()}")
    results = {}
    for mode, (cls, extra) in modes.items():
        torch.manual_seed(0)
        cfg = TrainConfig(epochs=1, progress=False, seed=0, **extra)
        trainer = cls(EMMKGR(inter, kg), inter, ev, None, cfg, kg=view)
        one_step(trainer)  # warm-up (caches the full graphs' adjacencies)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            one_step(trainer)
        wall = time.perf_counter() - t0
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows)
        top = [
            {
                "op": e.key,
                "self_ms": e.self_cpu_time_total / 1e3,
                "share": e.self_cpu_time_total / total,
                "calls": e.count,
            }
            for e in rows[: args.top]
        ]
        results[mode] = {"step_wall_s": wall, "profiled_self_cpu_s": total / 1e6, "top": top}
        print(f"\n{mode}: one step {wall:.3f} s (profiled)")
        print("| operator | self CPU (ms) | share | calls |\n|---|---|---|---|")
        for t in top:
            print(f"| {t['op']} | {t['self_ms']:.1f} | {t['share']:.1%} | {t['calls']} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profile_step.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS / 'profile_step.json'}")


if __name__ == "__main__":
    main()

"""The pipeline at catalogue sizes up to a million items, each stage timed with its peak memory.

    python benchmarks/scale.py --sizes 23033,100000,300000,1000000 [--fanout 10,5]

Per size, in a fresh subprocess (so that peak memory is per size): a generated catalogue with the
embedded default's mix (``conf/dataset/synthetic_<size>.yaml`` where it exists: 1.5 users and 15
interactions per item, title/description/review text and a 512-d image), then

1. ``prepare``: generate, split and encode (the hashing text encoder, 384-d: MiniLM would take
   hours at a million items on two cores), 65,536 rows at a time straight into float16 features;
   the raw texts are dropped once encoded;
2. ``knn``: HNSW kNN (top 10, symmetric; ``--hnsw-m``, ``--ef-construction``) of every modality;
3. ``emmkg``: the E-MMKG;
4. ``train``: E-MMKGR built (``--feature-dim``, default ``auto`` as the model configs: the 384-d
   and 512-d features reduced once to 256 directions, kept float16; the model's homogeneous view
   of the E-MMKG is the one the trainer samples from) and one training epoch with
   ``propagation=sampled``, ``--optimizer`` (default ``auto``: sparse Adam on the ID tables) and
   ``--allocator`` (default ``auto``: glibc keeps freed blocks for the next step) (or, with ``--train-steps``,
   that many steps; the epoch is then estimated as seconds per step times steps per epoch, and the
   table says so); the mean size of the sampled subgraphs per step is recorded;
5. ``eval``: one full pass under ``no_grad`` and full ranking (all items, training items masked)
   of a fixed sample of test users, in batches;
6. ``index``: the HNSW search index over :math:`H^{MM}`;
7. ``query``: one text query encoded and searched.

Each stage's seconds and peak RSS (``VmHWM``, reset before the stage) are printed as a table and
written to benchmarks/results/scale.json as ``{size: {stage: {seconds, peak_rss_mib}}}``. A second
table gives each stage's growth between consecutive sizes beside N log N's (the train row: the
estimated epoch), and the train rows a step's microseconds per node of its sampled subgraphs: a
sampled step's work is bounded by the batch and the fan-out, so it grows with N only until the
batch's neighbourhoods stop overlapping, and flat microseconds per node say that nothing else in
a step grows with the catalogue.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

# isort: off
import emmkgr_pyg  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

# isort: on
import numpy as np
import torch
import yaml

from emmkgr_pyg.data.dataset import TEST
from emmkgr_pyg.data.encoders import HashingTextEncoder
from emmkgr_pyg.data.features import encode_dataset, resolve_modalities
from emmkgr_pyg.data.synthetic import SyntheticReader
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph import InteractionGraph, KNNBuilder, build_emmkg
from emmkgr_pyg.nn import EMMKGR
from emmkgr_pyg.search.index import ItemIndex, ItemMeta
from emmkgr_pyg.search.query import QueryEncoder
from emmkgr_pyg.train import TrainConfig
from emmkgr_pyg.train.allocator import release_free_memory, resolve_allocator, use_allocator
from emmkgr_pyg.train.optim import resolve_optimizer
from emmkgr_pyg.train.sampled import SampledTrainer
from emmkgr_pyg.utils import peak_rss_mib, reset_peak_rss, write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = {100_000: "synthetic_100k", 300_000: "synthetic_300k", 1_000_000: "synthetic_1m"}
STAGES = ("prepare", "knn", "emmkg", "train", "eval", "index", "query")


def reader_options(size: int) -> dict:
    """The generator's options of a size: its config file, else the default's ratios."""
    name = CONFIGS.get(size)
    if name:
        cfg = yaml.safe_load((ROOT / "conf" / "dataset" / f"{name}.yaml").read_text())["reader"]
        return {k: v for k, v in cfg.items() if k != "_target_"}
    return {"n_users": size * 3 // 2, "n_items": size, "n_interactions": size * 15, "image_dim": 512}


@contextmanager
def stage(record: dict, name: str):
    reset_peak_rss()
    t0 = time.perf_counter()
    yield
    record[name] = {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mib": round(peak_rss_mib(), 1)}
    print(f"  {name}: {record[name]}", file=sys.stderr, flush=True)


def feature_dim(setting: str) -> int | str | None:
    """``--feature-dim`` as EMMKGR takes it."""
    return None if setting.lower() in ("none", "null") else (int(setting) if setting.isdigit() else setting)


def drop_modality_data(ds, features: bool) -> None:
    """Drop the catalogue's raw modality content (and its features with ``features``); in a
    function, so that no loop variable keeps the last modality's arrays alive (at 1M items the
    512-d image features, 1 GiB, stayed so until evaluation)."""
    for m, mod in list(ds.modalities.items()):
        kept = None if features else mod.features
        ds.catalog.modalities[m] = type(mod)(mod.name, mod.kind, mod.item_index, None, kept)


class TruncatedSampler:
    """The first ``steps`` batches of a BPR sampler (``--train-steps``)."""

    def __init__(self, sampler, steps: int) -> None:
        self.sampler, self.steps = sampler, steps

    def __len__(self) -> int:
        return min(self.steps, len(self.sampler))

    def __iter__(self):
        for i, batch in enumerate(self.sampler):
            if i == self.steps:
                return
            yield batch


def run_size(size: int, args) -> dict:
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    rec: dict = {}
    with stage(rec, "prepare"):
        raw = SyntheticReader(**reader_options(size)).read(None, f"synthetic_{size}")
        enc = HashingTextEncoder(dim=384)
        specs = resolve_modalities(raw, {"text_encoder": enc, "include": None, "exclude": [], "extra": {}})
        ds, _ = encode_dataset(raw, specs, progress=False, dtype=np.float16, chunk_rows=65536)
        del raw, specs
        drop_modality_data(ds, features=False)  # raw texts dropped once encoded
        inter = InteractionGraph.from_dataset(ds)
    # a fresh kNN cache per run unless asked to reuse one: the knn stage builds the edges and the
    # emmkg stage reads them back, as a pipeline run does (the curve up to stop 32 kept one cache
    # across runs, so its knn rows timed file reads, not builds)
    fresh = None if args.reuse_knn else tempfile.mkdtemp(dir=args.work)
    knn = KNNBuilder(
        index="hnsw",
        symmetric=True,
        hnsw_m=args.hnsw_m,
        ef_construction=args.ef_construction,
        progress=False,
        cache_dir=fresh or str(args.work / "knn"),
    )
    try:
        with stage(rec, "knn"):
            for mod in ds.modalities.values():
                knn.edges(mod.features, 10)
        with stage(rec, "emmkg"):
            kg = build_emmkg(ds, top_n=10, knn=knn)
    finally:
        if fresh:
            shutil.rmtree(fresh, ignore_errors=True)
    with stage(rec, "train"):
        torch.manual_seed(0)
        model = EMMKGR(inter, kg, feature_dim=feature_dim(args.feature_dim))
        view = model.encoder.view  # the model's own view: a second one was ~1.5 GiB at 1M
        # the model keeps the features it reads (reduced by feature_dim); the raw ones go
        del kg
        drop_modality_data(ds, features=True)
        gc.collect()
        fanout = [int(f) for f in args.fanout.split(",")]
        cfg = TrainConfig(
            epochs=1,
            progress=False,
            seed=0,
            propagation="sampled",
            fanout=fanout,
            optimizer=args.optimizer,
            allocator=args.allocator,
        )
        test_u, test_i = ds.interactions.part(TEST)
        users = np.random.default_rng(0).choice(
            np.unique(test_u), size=min(args.eval_users, len(np.unique(test_u))), replace=False
        )
        keep = np.isin(test_u, users)
        test = RankingEvaluator(inter, test_u[keep], test_i[keep], batch_size=args.eval_batch)
        trainer = SampledTrainer(model, inter, test, None, cfg, kg=view)
        steps = len(trainer.bpr)
        if args.train_steps:
            trainer.bpr = TruncatedSampler(trainer.bpr, args.train_steps)
            t0 = time.perf_counter()
        with use_allocator(cfg.allocator):  # as Trainer.fit trains
            trainer.train_epoch()
    rec["train"]["steps_per_epoch"] = steps
    rec["train"]["optimizer"] = resolve_optimizer(args.optimizer, "sampled")
    rec["train"]["allocator"] = resolve_allocator(args.allocator)
    rec["train"]["feature_dim"] = args.feature_dim
    done = max(trainer.sampled_nodes["steps"], 1)  # subgraph nodes per step: what a step costs
    rec["train"]["sampled_nodes_per_step"] = {
        "user_item": round(trainer.sampled_nodes["inter"] / done),
        "emmkg": round(trainer.sampled_nodes["kg"] / done),
    }
    if args.train_steps:
        per_step = (time.perf_counter() - t0) / min(args.train_steps, steps)
        rec["train"]["timed_steps"] = min(args.train_steps, steps)
        rec["train"]["s_per_step"] = round(per_step, 3)
        rec["train"]["epoch_s_estimated"] = round(per_step * steps, 1)
    rec["sizes"] = {
        "users": ds.n_users,
        "items": ds.n_items,
        "train_interactions": int(inter.user.numel()),
        "kg_nodes": view.num_nodes,
        "kg_edges": int(view.triples.size(1)),
    }
    # what evaluation and search do not need: the optimiser's state, the samplers and this
    # script's E-MMKG (the model keeps its own view); without this (and the encoder's blockwise
    # projection) the million-item evaluation was killed at ~22 GiB; with both, 18.8 GiB
    del trainer, view
    gc.collect()
    release_free_memory()  # the optimiser's state was allocated under train.allocator=reuse
    with stage(rec, "eval"):
        model.eval()
        with torch.no_grad():
            emb = model.embed()
            metrics = test.evaluate(lambda u: model.score(emb, u), prefix="test/")
    rec["eval"]["users"] = test.num_users
    rec["eval"]["Recall@20"] = round(metrics["test/Recall@20"], 4)
    h_mm = emb.extra["H_mm"][: ds.n_items].numpy()
    with stage(rec, "index"):
        index = ItemIndex(h_mm, ItemMeta.from_catalog(ds.catalog), kind="hnsw")
    with stage(rec, "query"):
        kinds = {m: ds.modalities[m].kind for m in model.encoder.modalities}
        f_enc = {m: (enc if k == "text" else None) for m, k in kinds.items()}
        q = QueryEncoder(model.encoder, f_enc, kinds).encode_text(["red cotton summer dress"])
        scores, pos = index.search(q, 10)
    rec["query"]["top_score"] = round(float(scores[0, 0]), 4)
    return rec


def provenance(size: int, args) -> dict:
    """The commit (``+dirty`` with uncommitted changes) and command a size's figures came from."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(  # the figures this script writes do not make the code dirty
        [*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"],
        capture_output=True,
        text=True,
    )
    commit = (
        head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else None
    )
    opts = f"--fanout {args.fanout} --train-steps {args.train_steps} --eval-users {args.eval_users}"
    opts += f" --optimizer {args.optimizer} --allocator {args.allocator} --feature-dim {args.feature_dim}"
    opts += f" --hnsw-m {args.hnsw_m} --ef-construction {args.ef_construction}"
    opts += " --reuse-knn" if args.reuse_knn else ""
    return {"commit": commit, "command": f"python benchmarks/scale.py --sizes {size} {opts}"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="23033,100000,300000,1000000")
    p.add_argument("--fanout", default="10,5", help="sampled training: neighbours per hop")
    p.add_argument("--eval-users", type=int, default=2000, help="test users ranked against all items")
    p.add_argument("--eval-batch", type=int, default=128)
    p.add_argument("--train-steps", type=int, default=0, help="time this many steps (0: the epoch)")
    p.add_argument("--optimizer", default="auto", help="train.optimizer (auto: sparse_adam, as sampled)")
    p.add_argument("--allocator", default="auto", help="train.allocator (auto: reuse on glibc)")
    p.add_argument(
        "--feature-dim", default="auto", help="model.net.feature_dim: auto (the configs'), none, or a number"
    )
    p.add_argument("--results", type=Path, default=RESULTS / "scale.json", help="where the curve goes")
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=80)
    p.add_argument("--work", type=Path, default=Path("/tmp/emmkgr-scale"), help="per-size results, kNN cache")
    p.add_argument(
        "--reuse-knn",
        action="store_true",
        help="keep the kNN cache under --work across runs (knn then times a read)",
    )
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        args.out.write_text(json.dumps(run_size(args.one, args)))
        return
    path = args.results
    results = json.loads(path.read_text()) if path.is_file() else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"size {size}:", flush=True)
        out = args.work / f"scale_{size}.json"
        args.work.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "--one", str(size), "--out", str(out), "--fanout", args.fanout]
        cmd += [
            "--eval-users",
            str(args.eval_users),
            "--eval-batch",
            str(args.eval_batch),
            "--work",
            str(args.work),
        ]
        cmd += ["--train-steps", str(args.train_steps), "--hnsw-m", str(args.hnsw_m)]
        cmd += ["--reuse-knn"] if args.reuse_knn else []
        cmd += ["--ef-construction", str(args.ef_construction), "--optimizer", args.optimizer]
        prov = provenance(size, args)  # before the run: the code it starts with
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            results[str(size)] = {"error": f"exit code {proc.returncode}"}
        else:
            results[str(size)] = json.loads(out.read_text())
        results[str(size)]["provenance"] = prov
        write_json(path, results)
    sizes = sorted((s for s in results if "error" not in results[s]), key=int)
    print("\n| stage | " + " | ".join(f"{int(s):,} items" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in STAGES:
        label = name
        if name == "train" and any("timed_steps" in results[s]["train"] for s in sizes):
            label = "train (timed steps only, with setup)"
        cells = [
            f"{results[s][name]['seconds']:.1f} s / {results[s][name]['peak_rss_mib'] / 1024:.2f} GiB"
            for s in sizes
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if any("epoch_s_estimated" in results[s]["train"] for s in sizes):
        cells = [
            f"{stage_seconds(results[s], 'train')} s "
            f"({results[s]['train'].get('timed_steps', 'all')} of {results[s]['train']['steps_per_epoch']} steps timed)"
            for s in sizes
        ]
        print("| train epoch, estimated | " + " | ".join(cells) + " |")
    if all("sampled_nodes_per_step" in results[s]["train"] for s in sizes):
        cells = [
            "{user_item:,} / {emmkg:,}".format(**results[s]["train"]["sampled_nodes_per_step"]) for s in sizes
        ]
        print("| train: subgraph nodes per step (user-item / E-MMKG) | " + " | ".join(cells) + " |")
        if all("s_per_step" in results[s]["train"] for s in sizes):
            cells = [f"{per_node_us(results[s]['train']):.2f}" for s in sizes]
            print("| train: us per step per subgraph node | " + " | ".join(cells) + " |")
    print_growth(results, sizes)
    print(f"\nwrote {path}")


def per_node_us(train: dict) -> float:
    """Microseconds of a training step per node of its two sampled subgraphs: a step's cost per
    unit of work, flat when nothing in a step grows with the catalogue."""
    nodes = train["sampled_nodes_per_step"]
    return 1e6 * train["s_per_step"] / (nodes["user_item"] + nodes["emmkg"])


def stage_seconds(record: dict, name: str) -> float:
    """A stage's seconds; for ``train`` the (estimated) epoch, not the timed steps."""
    if name == "train":
        return record["train"].get("epoch_s_estimated", record["train"]["seconds"])
    return record[name]["seconds"]


def print_growth(results: dict, sizes: list[str]) -> None:
    """Each stage's growth between consecutive sizes beside N log N's (the issue's bound)."""
    if len(sizes) < 2:
        return
    pairs = list(zip(sizes[:-1], sizes[1:]))
    print("\n| growth | " + " | ".join(f"{int(a):,} -> {int(b):,}" for a, b in pairs) + " |")
    print("|---|" + "---|" * len(pairs))
    bound = [int(b) * np.log(int(b)) / (int(a) * np.log(int(a))) for a, b in pairs]
    print("| N log N | " + " | ".join(f"{x:.2f}x" for x in bound) + " |")
    for name in STAGES:
        cells = []
        for (a, b), limit in zip(pairs, bound):
            lo, hi = stage_seconds(results[a], name), stage_seconds(results[b], name)
            cells.append(f"{hi / lo:.2f}x" + (" (over)" if hi / lo > limit else "") if lo >= 0.05 else "-")
        print(f"| {'train epoch' if name == 'train' else name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

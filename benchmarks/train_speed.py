"""Training speed of E-MMKGR against PyG's stock LightGCN, side by side in one run.

    python benchmarks/train_speed.py [--epochs 3] [--office-root ../shared/data/amazon-office-2014]

At Office scale (real interactions; MiniLM features from the cache when present, else the hashing
encoder) and at Amazon-Clothing scale (generated: 39,387 users, 23,033 items, 278,677
interactions; title/description/review at 384-d and a 4096-d image):

- seconds per training epoch of E-MMKGR (both graphs, BPR + KG loss, batch 2048), of our LightGCN,
  and of ``torch_geometric.nn.models.LightGCN`` trained as PyG's example does (batch 8192, its
  ``recommendation_loss``) and at batch 2048;
- full-ranking evaluation of all users (test split) at Clothing scale;
- negative sampling throughput (samples per second).

Prints a table; writes benchmarks/results/train_speed.json.

    python benchmarks/train_speed.py --shared [--epochs 3]

measures instead the E-MMKGR epoch of the Office dataset when its MiniLM features are cached, else
of the generated default (``dataset=synthetic``, hashing text), alone and beside one busy
single-threaded process (a Python loop), each setting in a fresh subprocess (the OpenMP wait policy
is read when torch loads): ``train.threads`` auto and 1, wait policy PASSIVE (the package's
default) and ACTIVE (OpenMP's). Writes benchmarks/results/train_speed_shared.json.

    python benchmarks/train_speed.py --clothing-ratio [--steps 10]

times ``--steps`` steps (after two warm-up steps) of E-MMKGR (full, and sampled with fan-out 10,5;
each also with ``feature_dim=auto``, the configs' default; and the default at batch 8192) and of
PyG's LightGCN example (batch 8192, and at our 2048; as PyG runs it, with the system allocator, and
once more under this package's ``train.allocator`` default) at Clothing scale, side by side; the
E-MMKGR rows train under ``train.allocator`` auto, as ``Trainer.fit`` does. It gives epoch
times as seconds per step times steps per epoch (a full epoch of each takes too long on a shared
2-core machine) and the issue's ratio, PyG example epoch / this epoch. Writes
benchmarks/results/train_speed_clothing_ratio.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# isort: off
import emmkgr_pyg  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

# isort: on
import numpy as np
import torch
from torch_geometric.nn.models import LightGCN as PyGLightGCN

from emmkgr_pyg.data.dataset import TEST, VALID
from emmkgr_pyg.data.encoders import HashingTextEncoder
from emmkgr_pyg.data.features import FeatureCache, encode_dataset, resolve_modalities
from emmkgr_pyg.data.prepared import load_dataset
from emmkgr_pyg.data.synthetic import SyntheticReader
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph import InteractionGraph, KNNBuilder, build_emmkg, kg_view
from emmkgr_pyg.nn import EMMKGR, LightGCN
from emmkgr_pyg.train import BPRSampler, TrainConfig, Trainer
from emmkgr_pyg.train.allocator import use_allocator

RESULTS = Path(__file__).resolve().parent / "results"


def office(root: str, cache: str):
    raw = load_dataset(
        {
            "name": "amazon_office",
            "root": root,
            "reader": {"_target_": "emmkgr_pyg.data.readers.LcRecJsonReader", "stem": "Office"},
        }
    )
    enc = {"_target_": "emmkgr_pyg.data.encoders.SentenceTransformerEncoder", "model": "bundled"}
    specs = resolve_modalities(raw, {"text_encoder": enc, "include": None, "exclude": [], "extra": {}})
    ds, rec = encode_dataset(raw, specs, cache=FeatureCache(cache), progress=False)
    return ds, "MiniLM" + ("" if all(r["cache_hit"] for r in rec.values()) else " (encoded now)")


def clothing():
    raw = SyntheticReader(n_users=39387, n_items=23033, n_interactions=278677, image_dim=4096).read(
        None, "clothing"
    )
    specs = resolve_modalities(
        raw,
        {"text_encoder": HashingTextEncoder(dim=384), "include": None, "exclude": [], "extra": {}},
    )
    ds, _ = encode_dataset(raw, specs, progress=False)
    return ds, "generated (hashing 384-d text, 4096-d image)"


def default_generated():
    raw = SyntheticReader().read(None, "synthetic")
    specs = resolve_modalities(
        raw, {"text_encoder": HashingTextEncoder(dim=384), "include": None, "exclude": [], "extra": {}}
    )
    ds, _ = encode_dataset(raw, specs, progress=False)
    return ds, "generated default (hashing 384-d text, 512-d image)"


def office_cached(root: str, cache: str):
    """Office with MiniLM features when they are cached, else ``None`` (encoding would dominate)."""
    try:
        ds, features = office(root, cache)
    except Exception:  # noqa: BLE001 - data or model missing: fall back to the generated default
        return None
    return None if "encoded now" in features else (ds, features)


def epoch_only(args) -> None:
    """Child process of ``--shared``: one E-MMKGR epoch time as JSON on stdout."""
    from emmkgr_pyg.runs.threads import apply_threads

    threads = apply_threads(args.threads)
    made = office_cached(args.office_root, args.cache_dir) if args.dataset == "office" else None
    ds, features = made or default_generated()
    inter = InteractionGraph.from_dataset(ds)
    kg = build_emmkg(ds, top_n=10, knn=KNNBuilder(index="exact", symmetric=True, progress=False))
    torch.manual_seed(0)
    seconds = time_trainer(EMMKGR(inter, kg), inter, kg_view(kg), args.epochs)
    print(json.dumps({"epoch_s": seconds, "threads": threads, "features": features, "items": ds.n_items}))


def shared_machine(args) -> None:
    """Epoch alone vs beside one busy process, per setting, measured side by side in one run."""
    script = str(Path(__file__).resolve())
    settings = [("auto", "PASSIVE"), ("1", "PASSIVE"), ("auto", "ACTIVE")]
    office_features = Path(args.cache_dir).expanduser() / "amazon_office"  # FeatureCache's folder
    dataset = "office" if office_features.is_dir() else "synthetic"
    results = {"load_average_at_start": os.getloadavg(), "cores": len(os.sched_getaffinity(0))}

    def child(threads: str, policy: str) -> dict:
        env = {**os.environ, "OMP_WAIT_POLICY": policy}
        env.pop("OMP_NUM_THREADS", None)
        cmd = [sys.executable, script, "--epoch-only", "--threads", threads, "--dataset", dataset]
        cmd += [
            "--epochs",
            str(args.epochs),
            "--office-root",
            args.office_root,
            "--cache-dir",
            args.cache_dir,
        ]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    for threads, policy in settings:
        alone = child(threads, policy)
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            beside = child(threads, policy)
        finally:
            busy.kill()
            busy.wait()
        results[f"threads={threads} {policy}"] = {
            "alone_epoch_s": alone["epoch_s"],
            "beside_busy_epoch_s": beside["epoch_s"],
            "slowdown": beside["epoch_s"] / alone["epoch_s"],
            "threads": alone["threads"],
            "features": alone["features"],
        }
    print(f"cores {results['cores']}, load average at start {results['load_average_at_start']}")
    print("\n| setting | alone (s/epoch) | beside a busy process (s/epoch) | slowdown |\n|---|---|---|---|")
    for key, r in results.items():
        if isinstance(r, dict):
            print(
                f"| {key} | {r['alone_epoch_s']:.2f} | {r['beside_busy_epoch_s']:.2f} | {r['slowdown']:.2f}x |"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_speed_shared.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS / 'train_speed_shared.json'}")


def seconds_per_step(step, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def clothing_ratio(args) -> None:
    """E-MMKGR (full, the default at this size; and sampled) vs PyG's LightGCN example at Clothing
    scale, side by side: seconds per step over ``--steps`` timed steps, times steps per epoch."""
    from emmkgr_pyg.train.sampled import SampledTrainer

    ds, features = clothing()
    inter = InteractionGraph.from_dataset(ds)
    kg = build_emmkg(ds, top_n=10, knn=KNNBuilder(index="hnsw", symmetric=True, progress=False))
    view = kg_view(kg)
    ev = RankingEvaluator(inter, inter.user[:1].numpy(), inter.item[:1].numpy())
    out = {"features": features, "threads": torch.get_num_threads(), "timed_steps": args.steps}

    def emmkgr_step(trainer):
        batches, kg_batches = iter(trainer.bpr), trainer.kg.cycle()

        def step():
            users, pos, neg = next(batches)
            if isinstance(trainer, SampledTrainer):
                losses = trainer.batch_losses(users, pos, neg, next(kg_batches))
            else:
                emb = trainer.model.embed()
                losses = trainer.model.rec_losses(emb, users, pos, neg)
                losses.update(trainer.model.kg_losses(emb, next(kg_batches)))
            trainer._step(trainer.optimizer, losses, {})

        return step

    sampled = {"propagation": "sampled", "fanout": [10, 5], "sampler": "torch"}
    auto = {"feature_dim": "auto"}  # the configs' default (conf/model/emmkgr.yaml)
    for name, extra, model_kw in (
        ("emmkgr_full", {}, {}),
        ("emmkgr_sampled", sampled, {}),
        ("emmkgr_full_feature_dim_auto", {}, auto),
        ("emmkgr_sampled_feature_dim_auto", sampled, auto),
        # at the PyG example's batch size, so that the two epochs do the same number of steps
        ("emmkgr_full_feature_dim_auto_batch8192", {"batch_size": 8192}, auto),
    ):
        torch.manual_seed(0)
        cfg = TrainConfig(epochs=1, progress=False, seed=0, **extra)
        cls = SampledTrainer if extra.get("propagation") == "sampled" else Trainer
        trainer = cls(EMMKGR(inter, kg, **model_kw), inter, ev, None, cfg, kg=view)
        with use_allocator(cfg.allocator):  # the default (auto), as Trainer.fit trains
            s = seconds_per_step(emmkgr_step(trainer), args.steps)
        out[name] = {"s_per_step": s, "steps_per_epoch": len(trainer.bpr), "epoch_s": s * len(trainer.bpr)}

    n_users, n_items = inter.n_users, inter.n_items
    edge_index = inter.edge_index()
    label = torch.stack([inter.user, inter.item + n_users])
    model = PyGLightGCN(num_nodes=n_users + n_items, embedding_dim=64, num_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    gen = torch.Generator().manual_seed(0)

    def pyg_step(batch: int = 8192):  # one step of PyG's examples/lightgcn.py (its batch: 8192)
        index = torch.randint(label.size(1), (batch,), generator=gen)
        pos = label[:, index]
        neg = torch.stack([pos[0], torch.randint(n_users, n_users + n_items, (index.numel(),))])
        eli = torch.cat([pos, neg], dim=1)
        optimizer.zero_grad()
        pos_rank, neg_rank = model(edge_index, eli).chunk(2)
        model.recommendation_loss(pos_rank, neg_rank, node_id=eli.unique()).backward()
        optimizer.step()

    # the example as PyG runs it (the system allocator), and with this package's default allocator
    for name, batch, allocator in (
        ("pyg_lightgcn_example", 8192, "system"),
        ("pyg_lightgcn_example_batch2048", 2048, "system"),
        ("pyg_lightgcn_example_allocator_reuse", 8192, "auto"),
    ):
        with use_allocator(allocator):
            s = seconds_per_step(lambda b=batch: pyg_step(b), args.steps)
        steps = (label.size(1) + batch - 1) // batch
        out[name] = {"s_per_step": s, "steps_per_epoch": steps, "epoch_s": s * steps}
    print(f"Clothing scale ({features}), {out['threads']} threads, {args.steps} timed steps each")
    print(
        "\n| model | s/step | steps/epoch | epoch (s) | PyG example epoch / this (target >= 1) |"
        "\n|---|---|---|---|---|"
    )
    base = out["pyg_lightgcn_example"]["epoch_s"]
    for name, r in out.items():
        if isinstance(r, dict):
            r["pyg_example_epoch_over_this"] = base / r["epoch_s"]
            print(
                f"| {name} | {r['s_per_step']:.3f} | {r['steps_per_epoch']} | {r['epoch_s']:.1f} "
                f"| {r['pyg_example_epoch_over_this']:.2f} |"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_speed_clothing_ratio.json").write_text(json.dumps(out, indent=2))
    print(f"\nwrote {RESULTS / 'train_speed_clothing_ratio.json'}")


def time_trainer(model, inter, view, epochs: int, batch_size: int = 2048) -> float:
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, progress=False, seed=0)
    ev = RankingEvaluator(inter, inter.user[:1].numpy(), inter.item[:1].numpy())
    trainer = Trainer(model, inter, ev, None, cfg, kg=view)
    with use_allocator(cfg.allocator):  # as Trainer.fit trains
        trainer.train_epoch()  # warm-up: caches the normalised adjacencies
        t0 = time.perf_counter()
        for _ in range(epochs):
            trainer.train_epoch()
        return (time.perf_counter() - t0) / epochs


def time_pyg_lightgcn(inter: InteractionGraph, epochs: int, batch_size: int) -> float:
    """One epoch as examples/lightgcn.py of PyG trains: LGConv re-normalises every step."""
    n_users, n_items = inter.n_users, inter.n_items
    edge_index = inter.edge_index()
    train_edge_label_index = torch.stack([inter.user, inter.item + n_users])
    model = PyGLightGCN(num_nodes=n_users + n_items, embedding_dim=64, num_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    loader = torch.utils.data.DataLoader(
        range(train_edge_label_index.size(1)), shuffle=True, batch_size=batch_size
    )

    def epoch():
        for index in loader:
            pos = train_edge_label_index[:, index]
            neg = torch.stack([pos[0], torch.randint(n_users, n_users + n_items, (index.numel(),))])
            eli = torch.cat([pos, neg], dim=1)
            optimizer.zero_grad()
            pos_rank, neg_rank = model(edge_index, eli).chunk(2)
            loss = model.recommendation_loss(pos_rank, neg_rank, node_id=eli.unique())
            loss.backward()
            optimizer.step()

    epoch()
    t0 = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return (time.perf_counter() - t0) / epochs


def bench(ds, epochs: int) -> dict:
    inter = InteractionGraph.from_dataset(ds)
    t0 = time.perf_counter()
    kg = build_emmkg(
        ds,
        top_n=10,
        knn=KNNBuilder(index="hnsw" if ds.n_items > 10000 else "exact", symmetric=True, progress=False),
    )
    graph_s = time.perf_counter() - t0
    view = kg_view(kg)
    torch.manual_seed(0)
    out = {
        "users": ds.n_users,
        "items": ds.n_items,
        "train_interactions": int(inter.user.numel()),
        "kg_nodes": view.num_nodes,
        "kg_edges": int(view.triples.size(1)),
        "graph_build_s": graph_s,
    }
    emmkgr = EMMKGR(inter, kg)
    out["emmkgr_epoch_s"] = time_trainer(emmkgr, inter, view, epochs)
    out["emmkgr_feature_dim256_epoch_s"] = time_trainer(
        EMMKGR(inter, kg, feature_dim=256), inter, view, epochs
    )
    out["lightgcn_epoch_s"] = time_trainer(LightGCN(inter), inter, None, epochs)
    out["pyg_lightgcn_example_epoch_s"] = time_pyg_lightgcn(inter, epochs, 8192)
    out["pyg_lightgcn_b2048_epoch_s"] = time_pyg_lightgcn(inter, epochs, 2048)
    out["pyg_example_over_emmkgr"] = out["pyg_lightgcn_example_epoch_s"] / out["emmkgr_epoch_s"]
    out["pyg_b2048_over_emmkgr"] = out["pyg_lightgcn_b2048_epoch_s"] / out["emmkgr_epoch_s"]
    out["pyg_example_over_emmkgr_fd256"] = (
        out["pyg_lightgcn_example_epoch_s"] / out["emmkgr_feature_dim256_epoch_s"]
    )
    # full-ranking evaluation of every test user
    test = RankingEvaluator(inter, *ds.interactions.part(TEST))
    emmkgr.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        emb = emmkgr.embed()
        test.evaluate(lambda u: emmkgr.score(emb, u))
    out["eval_all_users_s"] = time.perf_counter() - t0
    out["eval_users"] = test.num_users
    # negative sampling throughput
    sampler = BPRSampler(inter, generator=torch.Generator().manual_seed(0))
    users = inter.user[torch.randint(inter.user.numel(), (1_000_000,))]
    t0 = time.perf_counter()
    sampler.negatives(users)
    out["negatives_per_s"] = 1_000_000 / (time.perf_counter() - t0)
    valid_users = len(np.unique(ds.interactions.part(VALID)[0]))
    out["valid_users"] = valid_users
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--office-root",
        default=str(Path(__file__).resolve().parents[2] / "shared/data/amazon-office-2014"),
    )
    p.add_argument("--cache-dir", default="~/.cache/emmkgr-pyg")
    p.add_argument("--datasets", default="office,clothing")
    p.add_argument("--shared", action="store_true", help="epoch alone vs beside one busy process")
    p.add_argument(
        "--clothing-ratio", action="store_true", help="E-MMKGR vs PyG example per epoch, from timed steps"
    )
    p.add_argument("--steps", type=int, default=10, help="timed steps per model (--clothing-ratio)")
    p.add_argument("--epoch-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", default="auto", help=argparse.SUPPRESS)
    p.add_argument("--dataset", default="synthetic", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.epoch_only:
        return epoch_only(args)
    if args.shared:
        return shared_machine(args)
    if args.clothing_ratio:
        return clothing_ratio(args)
    print(f"torch threads: {torch.get_num_threads()}")
    results = {}
    makers = {"office": lambda: office(args.office_root, args.cache_dir), "clothing": clothing}
    for name in args.datasets.split(","):
        ds, features = makers[name]()
        print(f"{name}: {ds.n_users} users, {ds.n_items} items, features {features}")
        results[name] = {"features": features, **bench(ds, args.epochs)}
    rows = [
        ("E-MMKGR epoch (both graphs, BPR+KG, batch 2048)", "emmkgr_epoch_s"),
        ("E-MMKGR epoch, features reduced to 256-d once (feature_dim=256)", "emmkgr_feature_dim256_epoch_s"),
        ("our LightGCN epoch (batch 2048)", "lightgcn_epoch_s"),
        ("PyG LightGCN, as its example (batch 8192)", "pyg_lightgcn_example_epoch_s"),
        ("PyG LightGCN, batch 2048", "pyg_lightgcn_b2048_epoch_s"),
        ("PyG example epoch / E-MMKGR epoch", "pyg_example_over_emmkgr"),
        ("PyG batch-2048 epoch / E-MMKGR epoch", "pyg_b2048_over_emmkgr"),
        ("PyG example epoch / E-MMKGR (feature_dim=256) epoch", "pyg_example_over_emmkgr_fd256"),
        ("full-ranking evaluation, all test users (s)", "eval_all_users_s"),
        ("negative samples per second", "negatives_per_s"),
    ]
    names = list(results)
    print("\n| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for label, key in rows:
        print(f"| {label} | " + " | ".join(f"{results[n][key]:.3f}" for n in names) + " |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_speed.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS / 'train_speed.json'}")


if __name__ == "__main__":
    main()

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
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

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


def time_trainer(model, inter, view, epochs: int, batch_size: int = 2048) -> float:
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, progress=False, seed=0)
    ev = RankingEvaluator(inter, inter.user[:1].numpy(), inter.item[:1].numpy())
    trainer = Trainer(model, inter, ev, None, cfg, kg=view)
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
    args = p.parse_args()
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

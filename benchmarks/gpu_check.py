"""Training and evaluation speed on one GPU at Amazon-Clothing scale: what ``gpu_check.sh`` runs.

    python benchmarks/gpu_check.py [--device cuda] [--epochs 2] [--budget-s 400] [--out FILE]
    python benchmarks/gpu_check.py --device cpu --tiny          # the same path on tiny data

Stages, each timed and kept apart so that one failure leaves the others' numbers: the generated
Clothing-scale catalogue (39,387 users, 23,033 items, 278,677 interactions; hashing 384-d text,
4096-d image, as ``train_speed.py``), the E-MMKG (faiss kNN on the CPU), a training epoch of E-MMKGR
(BPR + KG, batch 2048) and of LightGCN on the device (one warm-up epoch, then ``--epochs`` timed),
and full-ranking evaluation of all test users on the device. A stage that would start after
``--budget-s`` is skipped. Prints a table; writes JSON (stage times, errors, peak device memory).

The trainer and the evaluator keep their index tensors on the CPU; the two adapters below move the
batches to the device and bring the evaluator's hit matrix back, which is what a device option of
the trainer would do.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from emmkgr_pyg.data.dataset import TEST
from emmkgr_pyg.data.encoders import HashingTextEncoder
from emmkgr_pyg.data.features import encode_dataset, resolve_modalities
from emmkgr_pyg.data.synthetic import SyntheticReader
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph import InteractionGraph, KNNBuilder, build_emmkg, kg_view
from emmkgr_pyg.nn import EMMKGR, LightGCN
from emmkgr_pyg.train import TrainConfig, Trainer

CLOTHING = {"n_users": 39387, "n_items": 23033, "n_interactions": 278677, "image_dim": 4096}
TINY = {"n_users": 200, "n_items": 150, "n_interactions": 2000, "image_dim": 32}


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, tuple):
        return tuple(t.to(device, non_blocking=True) for t in batch)
    fields = dataclasses.fields(batch)
    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name).to(device) for f in fields})


class OnDevice:
    """A sampler whose batches arrive on ``device`` (``len``, iteration and ``cycle`` as the
    trainer uses them)."""

    def __init__(self, sampler: Any, device: torch.device) -> None:
        self.sampler, self.device = sampler, device

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.sampler:
            yield to_device(batch, self.device)

    def cycle(self) -> Iterator[Any]:
        while True:
            yield from self


class DeviceEvaluator(RankingEvaluator):
    """Scores, masks and ranks on the device; the [users x k] hit matrix comes back for metrics."""

    def hits(self, score_fn: Callable, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hit, n_true = super().hits(score_fn, users)
        return hit.cpu(), n_true


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dataset(tiny: bool):
    raw = SyntheticReader(**(TINY if tiny else CLOTHING)).read(None, "tiny" if tiny else "clothing")
    text = {"text_encoder": HashingTextEncoder(dim=384), "include": None, "exclude": [], "extra": {}}
    ds, _ = encode_dataset(raw, resolve_modalities(raw, text), progress=False)
    return ds


def train_epochs(model, inter, view, device: torch.device, epochs: int) -> dict[str, float]:
    model.to(device)
    valid = DeviceEvaluator(inter, inter.user[:1].numpy(), inter.item[:1].numpy())
    trainer = Trainer(model, inter, valid, None, TrainConfig(epochs=epochs, progress=False, seed=0), kg=view)
    trainer.bpr = OnDevice(trainer.bpr, device)
    if trainer.kg is not None:
        trainer.kg = OnDevice(trainer.kg, device)
    t0 = time.perf_counter()
    trainer.train_epoch()  # warm-up: normalised adjacencies, kernels, allocator
    sync(device)
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(epochs):
        losses = trainer.train_epoch()
    sync(device)
    return {"warmup_epoch_s": warmup, "epoch_s": (time.perf_counter() - t0) / epochs, **losses}


def evaluate_all_users(model, inter, ds, device: torch.device) -> dict[str, float]:
    test = DeviceEvaluator(inter, *ds.interactions.part(TEST), batch_size=4096)
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        emb = model.embed()
        metrics = test.evaluate(lambda users: model.score(emb, users.to(device)), prefix="test/")
    sync(device)
    return {
        "eval_s": time.perf_counter() - t0,
        "users": test.num_users,
        "Recall@20": metrics["test/Recall@20"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="synthetic_tiny's size: a dry run of the path")
    p.add_argument("--budget-s", type=float, default=400.0, help="start no stage after this many seconds")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "gpu_check.json")
    args = p.parse_args()
    device = torch.device(args.device)
    start = time.perf_counter()
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "tiny": args.tiny,
        "epochs": args.epochs,
        "stages": {},
    }
    state: dict[str, Any] = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def stage(name: str, fn: Callable[[], dict[str, Any] | None]) -> None:
        if time.perf_counter() - start > args.budget_s:
            report["stages"][name] = {"skipped": f"budget of {args.budget_s:.0f} s spent"}
            return
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        try:
            out = fn() or {}
        except Exception as e:  # keep going: the next stages' numbers are still worth having
            out = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=4)}
        out["seconds"] = round(time.perf_counter() - t0, 3)
        if device.type == "cuda":
            out["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        report["stages"][name] = out
        args.out.write_text(json.dumps(report, indent=2))  # kept if a later stage is cut off
        print(
            f"[gpu_check] {name}: {json.dumps({k: v for k, v in out.items() if k != 'traceback'})}",
            flush=True,
        )

    def data() -> dict[str, Any]:
        state["ds"] = ds = dataset(args.tiny)
        state["inter"] = InteractionGraph.from_dataset(ds)
        return {
            "users": ds.n_users,
            "items": ds.n_items,
            "train_interactions": int(state["inter"].user.numel()),
        }

    def graph() -> dict[str, Any]:
        ds = state["ds"]
        knn = KNNBuilder(index="hnsw" if ds.n_items > 10000 else "exact", symmetric=True, progress=False)
        state["kg"] = kg = build_emmkg(ds, top_n=10, knn=knn)
        state["view"] = view = kg_view(kg)
        return {"kg_nodes": view.num_nodes, "kg_triples": int(view.triples.size(1))}

    def emmkgr() -> dict[str, Any]:
        torch.manual_seed(0)
        state["emmkgr"] = model = EMMKGR(state["inter"], state["kg"])
        return train_epochs(model, state["inter"], state["view"], device, args.epochs)

    def lightgcn() -> dict[str, Any]:
        torch.manual_seed(0)
        return train_epochs(LightGCN(state["inter"]), state["inter"], None, device, args.epochs)

    stage("data", data)
    stage("graph", graph)
    stage("emmkgr_train", emmkgr)
    stage("lightgcn_train", lightgcn)
    stage(
        "emmkgr_eval_all_users",
        lambda: evaluate_all_users(state["emmkgr"], state["inter"], state["ds"], device),
    )
    report["total_s"] = round(time.perf_counter() - start, 3)

    rows = [
        ("E-MMKGR epoch (BPR + KG, batch 2048), s", "emmkgr_train", "epoch_s"),
        ("LightGCN epoch (batch 2048), s", "lightgcn_train", "epoch_s"),
        ("full-ranking evaluation, all test users, s", "emmkgr_eval_all_users", "eval_s"),
        ("E-MMKG build (CPU), s", "graph", "seconds"),
    ]
    print(f"\n| {report['device']} ({'tiny' if args.tiny else 'Clothing scale'}) | |\n|---|---|")
    for label, name, key in rows:
        got = report["stages"].get(name, {})
        value = got.get(key)
        print(
            f"| {label} | {f'{value:.3f}' if isinstance(value, float) else got.get('error', got.get('skipped', '-'))} |"
        )
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out} ({report['total_s']:.0f} s)")
    failed = [n for n, s in report["stages"].items() if "error" in s]
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()

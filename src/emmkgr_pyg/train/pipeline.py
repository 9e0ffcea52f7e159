"""From a composed configuration to a trained run folder.

``run_training(cfg, run_dir)`` prepares the dataset (features cached), builds the E-MMKG when the
model needs it, trains with early stopping and writes into ``run_dir``: ``results.json``,
``best.pt`` / ``last.pt`` (checkpoints), ``embeddings.pt`` (the item embeddings search uses:
``item`` = H_item, ``H_mm_item`` = H^MM for E-MMKGR), ``graph_stats.json`` and ``history.jsonl``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from ..data.dataset import TEST, VALID, DataError, MMDataset
from ..data.prepared import prepare_dataset
from ..eval.ranking import RankingEvaluator
from ..graph.emmkg import build_emmkg, graph_stats
from ..graph.interaction import InteractionGraph
from ..graph.triples import kg_view
from ..utils import atomic_path, peak_rss_mib, reset_peak_rss, seed_everything, write_json
from .trainer import TrainConfig, Trainer

log = logging.getLogger(__name__)


def build_graph(dataset: MMDataset, graph_cfg: DictConfig | dict):
    """The E-MMKG of ``dataset`` as ``conf/graph`` describes it."""
    cfg = (
        dict(OmegaConf.to_container(graph_cfg, resolve=True))
        if isinstance(graph_cfg, DictConfig)
        else dict(graph_cfg)
    )
    knn = instantiate(cfg.pop("knn")) if cfg.get("knn") else None
    return build_emmkg(dataset, knn=knn, **cfg)


def train_config(cfg: DictConfig) -> TrainConfig:
    values = OmegaConf.to_container(cfg.train, resolve=True)
    return TrainConfig(**values, seed=int(cfg.seed))


def run_training(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train one configuration; returns (and writes) ``results.json``'s content."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    reset_peak_rss()  # per job, also inside a multirun process
    dataset, prep = prepare_dataset(cfg.dataset, cfg.modality, cfg.cache_dir, progress=cfg.train.progress)
    inter = InteractionGraph.from_dataset(dataset)
    model_cls = get_class(cfg.model.net._target_)
    kg, view, stats = None, None, None
    if getattr(model_cls, "needs_kg", False):
        if not dataset.modalities:
            raise DataError(
                f"model '{cfg.model.name}' needs modality features and dataset '{dataset.name}' has "
                "none; use model=lightgcn, or add a modality (modality.extra)."
            )
        t0 = time.perf_counter()
        kg = build_graph(dataset, cfg.graph)
        view = kg_view(kg)
        stats = {**graph_stats(kg), "build_seconds": round(time.perf_counter() - t0, 3)}
        write_json(run_dir / "graph_stats.json", stats)
    seed_everything(int(cfg.seed))
    # runtime objects go to the partial, not through the config (OmegaConf would convert them)
    model = instantiate(cfg.model.net, _partial_=True, _convert_="all")(inter=inter, kg=kg)
    tcfg = train_config(cfg)
    valid = RankingEvaluator(
        inter, *dataset.interactions.part(VALID), ks=tcfg.ks, batch_size=tcfg.eval_batch_size
    )
    test = RankingEvaluator(
        inter, *dataset.interactions.part(TEST), ks=tcfg.ks, batch_size=tcfg.eval_batch_size
    )
    trainer = Trainer(model, inter, valid, test, tcfg, kg=view, out_dir=run_dir)
    if cfg.get("resume") and (run_dir / "last.pt").is_file():
        trainer.resume(run_dir / "last.pt")
    state = trainer.fit()

    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(best["model"])
    model.eval()
    with torch.no_grad():
        exported = {
            k: v.detach().clone() for k, v in model.export_embeddings(model.embed()).items() if v is not None
        }
    with atomic_path(run_dir / "embeddings.pt") as tmp:
        torch.save(exported, tmp)
    with atomic_path(run_dir / "history.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in state.history))

    epochs = max(state.epoch, 1)
    results = {
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "seed": int(cfg.seed),
        **state.best_valid,
        **state.best_test,
        "best_epoch": state.best_epoch,
        "epochs": state.epoch,
        "train_seconds": round(state.train_seconds, 3),
        "eval_seconds": round(state.eval_seconds, 3),
        "seconds_per_epoch": round(state.train_seconds / epochs, 4),
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "peak_rss_mib": peak_rss_mib(),
        "dataset_stats": dataset.stats(),
        "prepare": prep,
        "graph_stats": stats,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json(run_dir / "results.json", results)
    return results


@dataclass
class TrainedRun:
    """A trained run folder, loaded: its config, dataset, graph and model (at the best epoch)."""

    run_dir: Path
    cfg: DictConfig
    dataset: MMDataset
    inter: InteractionGraph
    kg: Any
    model: Any
    results: dict[str, Any]


def load_run(run_dir: str | Path, progress: bool = False) -> TrainedRun:
    """Rebuild a run from ``results.json`` (features and kNN edges come from the caches) and load
    ``best.pt``. Raises :class:`FileNotFoundError` naming what is missing."""
    run_dir = Path(run_dir)
    res_path, ckpt_path = run_dir / "results.json", run_dir / "best.pt"
    for path, what in ((res_path, "results.json"), (ckpt_path, "best.pt")):
        if not path.is_file():
            raise FileNotFoundError(
                f"{run_dir} is not a trained run: {what} is missing. Train one with "
                f"`emmkgr-train hydra.run.dir={run_dir}` (or point run_dir at a finished run)."
            )
    results = json.loads(res_path.read_text())
    cfg = OmegaConf.create(results["config"])
    dataset, _ = prepare_dataset(cfg.dataset, cfg.modality, cfg.cache_dir, progress=progress)
    inter = InteractionGraph.from_dataset(dataset)
    model_cls = get_class(cfg.model.net._target_)
    kg = build_graph(dataset, cfg.graph) if getattr(model_cls, "needs_kg", False) else None
    model = instantiate(cfg.model.net, _partial_=True, _convert_="all")(inter=inter, kg=kg)
    model.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=False)["model"])
    model.eval()
    return TrainedRun(run_dir, cfg, dataset, inter, kg, model, results)

"""From a composed configuration to a trained run folder (what it holds: :mod:`.artifacts`).

``run_training(cfg, run_dir)`` prepares the dataset (features cached), builds the E-MMKG when the
model reads modality features (its kNN edges only when the model propagates over them), trains
with early stopping and writes the run's artifacts into ``run_dir``. With
``link_prediction.holdout > 0`` a model with a KG loss trains on the E-MMKG less some held-out
triples, and ``results.json`` reports link prediction on them (``kg/MRR``, ``kg/Hits@k``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch_geometric.data import HeteroData

from ..data.dataset import TEST, VALID, DataError, MMDataset
from ..data.prepared import prepare_dataset
from ..eval.link_prediction import link_prediction
from ..eval.ranking import RankingEvaluator
from ..graph.emmkg import build_emmkg, graph_stats
from ..graph.interaction import InteractionGraph
from ..graph.triples import KGView, hold_out_triples, kg_view
from ..nn.kge import check_rotate_dim
from ..nn.recommender import Embeddings, Recommender
from ..train.allocator import resolve_allocator
from ..train.distributed import close_data_parallel, init_data_parallel
from ..train.sampled import trainer_class
from ..train.trainer import TrainConfig
from ..utils import atomic_path, peak_rss_mib, reset_peak_rss, resolve_device, seed_everything, write_json
from . import artifacts
from .threads import apply_threads

log = logging.getLogger(__name__)


def build_graph(dataset: MMDataset, graph_cfg: DictConfig | dict, **overrides: Any) -> HeteroData:
    """The E-MMKG of ``dataset`` as ``conf/graph`` describes it (``overrides`` win)."""
    cfg = (
        dict(OmegaConf.to_container(graph_cfg, resolve=True))
        if isinstance(graph_cfg, DictConfig)
        else dict(graph_cfg)
    )
    cfg.update(overrides)
    knn = instantiate(cfg.pop("knn")) if cfg.get("knn") else None
    return build_emmkg(dataset, knn=knn, **cfg)


def model_class(cfg: DictConfig) -> type[Recommender]:
    """The recommender class a config names (``model.net._target_``)."""
    cls = get_class(cfg.model.net._target_)
    if not (isinstance(cls, type) and issubclass(cls, Recommender)):
        raise DataError(
            f"model.net._target_={cfg.model.net._target_} is not a Recommender subclass; name one "
            "of the classes in emmkgr_pyg.nn or emmkgr_pyg.baselines."
        )
    return cls


def model_graph(cfg: DictConfig, dataset: MMDataset, model_cls: type[Recommender]) -> HeteroData | None:
    """The E-MMKG the model reads, or ``None`` when it reads no modality features. A model that
    does not propagate over modal-modal edges gets a graph without them (no kNN is built)."""
    if not model_cls.needs_features:
        return None
    if not dataset.modalities:
        raise DataError(
            f"model '{cfg.model.name}' needs modality features and dataset '{dataset.name}' has "
            "none; use model=lightgcn, or add a modality (modality.extra)."
        )
    overrides = {} if model_cls.needs_modal_edges else {"modal_modal": False, "item_item": False}
    return build_graph(dataset, cfg.graph, **overrides)


def evaluate_link_prediction(
    model: Recommender, emb: Embeddings, full: KGView, test: torch.Tensor
) -> dict[str, float]:
    """Filtered, typed tail ranking of the held-out ``test`` triples among the nodes of each
    relation's tail type (:mod:`emmkgr_pyg.eval.link_prediction`), as ``kg/<metric>``."""
    metrics = link_prediction(
        lambda h, r, t: model.kg_distance(emb, h, r, t),
        test,
        full.num_nodes,
        len(full.relations),
        tail_range=full.tail_range,
        known=full.triples,
    )
    return {f"kg/{k}": v for k, v in metrics.items()}


def train_config(cfg: DictConfig) -> TrainConfig:
    values = OmegaConf.to_container(cfg.train, resolve=True)
    return TrainConfig(**values, seed=int(cfg.seed))


def build_model(cfg: DictConfig, inter: InteractionGraph, kg: HeteroData | None) -> Recommender:
    # runtime objects go to the partial, not through the config (OmegaConf would convert them)
    return instantiate(cfg.model.net, _partial_=True, _convert_="all")(inter=inter, kg=kg)


def run_training(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train one configuration; returns (and writes) ``results.json``'s content.

    Under ``torchrun`` every rank trains its share of each batch (:mod:`..train.distributed`);
    rank 0 evaluates and writes the run folder, the other ranks write nothing and return ``{}``.
    """
    parallel = init_data_parallel()
    run_dir = Path(parallel.broadcast_object(str(run_dir)))  # rank 0's folder, for resume
    if parallel.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    reset_peak_rss()  # per job, also inside a multirun process
    log.info(
        "torch threads: %d; allocator: %s",
        apply_threads(cfg.train.get("threads", "auto")),
        resolve_allocator(cfg.train.get("allocator", "auto")),
    )
    dataset, prep = prepare_dataset(cfg.dataset, cfg.modality, cfg.cache_dir, progress=cfg.train.progress)
    # taken as load_run recomputes it: from the freshly prepared catalogue, before anything uses it
    fingerprint = artifacts.catalog_fingerprint(dataset)
    inter = InteractionGraph.from_dataset(dataset)
    model_cls = model_class(cfg)
    t0 = time.perf_counter()
    if model_cls.has_kg_loss:  # an odd RotatE size is refused before the graph is built
        check_rotate_dim(cfg.model.net.get("kg_dim") or cfg.model.net.get("dim", 64))
    kg = model_graph(cfg, dataset, model_cls)
    stats, kg_full, kg_test = None, None, None
    holdout = float(cfg.get("link_prediction", {}).get("holdout", 0.0))
    if kg is not None and model_cls.has_kg_loss and holdout > 0:
        kg_full = kg
        kg, kg_test = hold_out_triples(kg_full, holdout, int(cfg.link_prediction.seed))
    if kg is not None:
        stats = {**graph_stats(kg), "build_seconds": round(time.perf_counter() - t0, 3)}
        if kg_test is not None:
            stats["held_out_triples"] = int(kg_test.size(1))
        if parallel.is_main:
            write_json(run_dir / artifacts.GRAPH_STATS, stats)
    seed_everything(int(cfg.seed))
    model = build_model(cfg, inter, kg).to(resolve_device(cfg.get("device", "auto")))
    tcfg = train_config(cfg)
    valid, test = (
        RankingEvaluator(inter, *dataset.interactions.part(p), ks=tcfg.ks, batch_size=tcfg.eval_batch_size)
        for p in (VALID, TEST)
    )
    if valid.num_users == 0:
        raise DataError(
            f"dataset '{dataset.name}': no user has a validation interaction, so early stopping "
            "would pick an untrained model; use a split that holds some out for validation "
            "(the MMRec rule gives every user with 3+ interactions one) or more interactions."
        )
    if not cfg.get("evaluate_test", True):
        test = None
    view = kg_view(kg) if kg is not None and model_cls.has_kg_loss else None
    trainer = trainer_class(tcfg.propagation)(
        model, inter, valid, test, tcfg, kg=view, out_dir=run_dir, parallel=parallel
    )
    if cfg.get("resume") and (run_dir / artifacts.LAST).is_file():
        trainer.resume(run_dir / artifacts.LAST, force=cfg.resume == "force")
    state = trainer.fit()
    close_data_parallel()
    if not parallel.is_main:
        return {}

    best = artifacts.load_tensors(run_dir / artifacts.BEST)
    model.load_state_dict(best["model"])  # onto the model's device
    model.eval()
    prior = None
    # chosen on validation at the best epoch; the reported metrics are its
    if tcfg.score_prior or tcfg.interaction_prior:
        prior = trainer.choose_score_prior()
        state.best_valid, state.best_test = prior.pop("valid"), prior.pop("test")
    with torch.no_grad():
        emb = model.embed()
        artifacts.save_embeddings(run_dir, model.export_embeddings(emb))
    kg_metrics = {} if kg_test is None else evaluate_link_prediction(model, emb, kg_view(kg_full), kg_test)
    with atomic_path(run_dir / artifacts.HISTORY) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in state.history))

    epochs = max(state.epoch, 1)
    results = {
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "seed": int(cfg.seed),
        **state.best_valid,
        **state.best_test,
        **kg_metrics,
        **({} if prior is None else {"score_prior": prior}),
        "best_epoch": state.best_epoch,
        "epochs": state.epoch,
        "train_seconds": round(state.train_seconds, 3),
        "eval_seconds": round(state.eval_seconds, 3),
        "seconds_per_epoch": round(state.train_seconds / epochs, 4),
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "peak_rss_mib": peak_rss_mib(),
        "world_size": parallel.world_size,
        "dataset_stats": dataset.stats(),
        "catalog_fingerprint": fingerprint,
        "prepare": prep,
        "graph_stats": stats,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json(run_dir / artifacts.RESULTS, results)
    return results

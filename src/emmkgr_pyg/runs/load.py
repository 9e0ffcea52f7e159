"""A trained run folder, loaded back: its config, dataset, graph and model at the best epoch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch_geometric.data import HeteroData

from ..data.dataset import MMDataset
from ..data.prepared import prepare_dataset
from ..graph.interaction import InteractionGraph
from ..nn.recommender import Recommender
from . import artifacts
from .compose import build_model, model_class, model_graph


@dataclass
class TrainedRun:
    """A trained run folder, loaded: its config, dataset, graph and model (at the best epoch)."""

    run_dir: Path
    cfg: DictConfig
    dataset: MMDataset
    inter: InteractionGraph
    kg: HeteroData | None
    model: Recommender
    results: dict[str, Any]


def load_run(run_dir: str | Path, progress: bool = False) -> TrainedRun:
    """Rebuild a run from ``results.json`` (features and kNN edges come from the caches) and load
    ``best.pt``. Raises :class:`FileNotFoundError` naming what is missing."""
    run_dir = Path(run_dir)
    res_path, ckpt_path = run_dir / artifacts.RESULTS, run_dir / artifacts.BEST
    for path in (res_path, ckpt_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{run_dir} is not a trained run: {path.name} is missing. Train one with "
                f"`emmkgr-train hydra.run.dir={run_dir}` (or point run_dir at a finished run)."
            )
    results = json.loads(res_path.read_text())
    cfg = OmegaConf.create(results["config"])
    dataset, _ = prepare_dataset(cfg.dataset, cfg.modality, cfg.cache_dir, progress=progress)
    inter = InteractionGraph.from_dataset(dataset)
    kg = model_graph(cfg, dataset, model_class(cfg))
    model = build_model(cfg, inter, kg)
    model.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=True)["model"])
    model.eval()
    return TrainedRun(run_dir, cfg, dataset, inter, kg, model, results)

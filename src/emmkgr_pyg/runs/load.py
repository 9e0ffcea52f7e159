"""A trained run folder, loaded back: its config, dataset, graph and model at the best epoch.

A run folder may come from elsewhere, so loading one runs nothing it names: checkpoints and
embeddings are read as tensors only, and every ``_target_`` of its config must be a class of this
package (or one the user trusts by name). A run whose catalogue changed since training is refused:
its embeddings would sit beside other items' titles.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch_geometric.data import HeteroData

from ..data.dataset import DataError, MMDataset
from ..data.prepared import prepare_dataset
from ..graph.interaction import InteractionGraph
from ..nn.recommender import Recommender
from . import artifacts
from .artifacts import UntrustedRunError
from .compose import build_model, model_class, model_graph

log = logging.getLogger(__name__)

#: module prefixes whose classes a run's config may name without the user's say-so
TRUSTED_PREFIXES = ("emmkgr_pyg.",)
#: more trusted targets (comma-separated names or ``prefix.`` forms), for runs one trusts
TRUSTED_ENV = "EMMKGR_TRUSTED_TARGETS"


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


def _targets(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{path}.{k}" if path else str(k)
            if k == "_target_":
                yield key, v
            else:
                yield from _targets(v, key)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _targets(v, f"{path}[{i}]")


def check_targets(config: dict[str, Any], source: str | Path, trusted: Sequence[str] = ()) -> None:
    """Refuse a config that names a ``_target_`` outside this package and ``trusted``.

    Raises:
        UntrustedRunError: naming the file, the key and the way to trust it.
    """
    allowed = (*TRUSTED_PREFIXES, *trusted, *filter(None, os.environ.get(TRUSTED_ENV, "").split(",")))
    for key, target in _targets(config):
        name = str(target)
        if not any(name == a or (a.endswith(".") and name.startswith(a)) for a in allowed):
            raise UntrustedRunError(
                f"{source}: {key}={name} is not a class of emmkgr_pyg; nothing was loaded. If you "
                f"trust this run, set {TRUSTED_ENV}={name} (or pass trusted_targets=['{name}'])."
            )


def load_run(
    run_dir: str | Path,
    progress: bool = False,
    trusted_targets: Sequence[str] = (),
    allow_changed_catalog: bool = False,
) -> TrainedRun:
    """Rebuild a run from ``results.json`` (features and kNN edges come from the caches) and load
    ``best.pt``.

    Args:
        run_dir: a folder written by ``emmkgr-train``.
        progress: show progress bars while preparing the dataset.
        trusted_targets: ``_target_`` names (or ``prefix.``) outside ``emmkgr_pyg`` the config may use.
        allow_changed_catalog: load even when the catalogue changed since training (warns).

    Raises:
        FileNotFoundError: naming what is missing.
        UntrustedRunError: the config names a class from elsewhere, or a ``.pt`` holds code.
        DataError: ``results.json`` is unreadable, or the catalogue changed since training.
    """
    run_dir = Path(run_dir)
    res_path, ckpt_path = run_dir / artifacts.RESULTS, run_dir / artifacts.BEST
    for path in (res_path, ckpt_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{run_dir} is not a trained run: {path.name} is missing. Train one with "
                f"`emmkgr-train hydra.run.dir={run_dir}` (or point run_dir at a finished run)."
            )
    try:
        results = json.loads(res_path.read_text())
        config = results["config"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"{res_path}: not a results.json of emmkgr-train ({type(e).__name__}: {e}); retrain the run."
        ) from None
    check_targets(config, res_path, trusted_targets)
    cfg = OmegaConf.create(config)
    dataset, _ = prepare_dataset(cfg.dataset, cfg.modality, cfg.cache_dir, progress=progress)
    saved, now = results.get("catalog_fingerprint"), artifacts.catalog_fingerprint(dataset)
    if saved is not None and saved != now:
        message = (
            f"{res_path}: the catalogue of dataset '{dataset.name}' changed since this run was "
            "trained (items, texts or features differ), so its embeddings no longer match the items; "
            "retrain it (or pass allow_changed_catalog=True to load it anyway)."
        )
        if not allow_changed_catalog:
            raise DataError(message)
        log.warning("%s", message)
    inter = InteractionGraph.from_dataset(dataset)
    kg = model_graph(cfg, dataset, model_class(cfg))
    model = build_model(cfg, inter, kg)
    model.load_state_dict(artifacts.load_tensors(ckpt_path)["model"])
    model.eval()
    prior = results.get("score_prior") or {}
    if prior.get("weight") or prior.get("interaction_weight"):  # as the run chose on validation
        model.set_score_prior(
            float(prior.get("weight", 0.0)), inter, float(prior.get("interaction_weight", 0.0))
        )
    return TrainedRun(run_dir, cfg, dataset, inter, kg, model, results)

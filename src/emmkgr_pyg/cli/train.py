"""``emmkgr-train``: train a recommender from ``conf/`` (``-m`` for sweeps).

Writes ``results.json``, checkpoints and ``embeddings.pt`` in the run folder (``hydra.run.dir``)
and returns validation Recall@20 for sweepers. In a multirun, a failing job writes ``error.json``
in its folder, returns ``None`` (not a number: the Optuna sweeper records the trial as failed; it
cannot take NaN) and the sweep goes on. Under ``torchrun`` (data-parallel training, see
:mod:`emmkgr_pyg.train.distributed`) only rank 0 has a run folder.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import traceback

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ..runs import run_training
from ..train.trainer import CheckpointMismatchError, NonFiniteLossError
from ..utils import write_json
from . import CONFIG_PATH, exit_on_user_error

log = logging.getLogger("emmkgr-train")
#: what a single run reports in one line, besides :data:`USER_ERRORS <emmkgr_pyg.cli.USER_ERRORS>`
TRAIN_ERRORS = (NonFiniteLossError, CheckpointMismatchError)


def rank_overrides() -> list[str]:
    """Hydra overrides for a ``torchrun`` rank other than 0: no run folder and no ``.hydra`` of its
    own (it trains in rank 0's folder and writes nothing)."""
    if int(os.environ.get("RANK", "0")) == 0:
        return []
    return ["hydra.run.dir=.", "hydra.output_subdir=null"]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def train(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    run_dir = hc.runtime.output_dir
    metric = f"valid/{cfg.train.metric}"
    single = hc.mode != RunMode.MULTIRUN
    try:
        # a single run reports an error a person can act on in one line; a sweep records it
        with exit_on_user_error("emmkgr-train", *TRAIN_ERRORS) if single else contextlib.nullcontext():
            results = run_training(cfg, run_dir)
    except Exception as e:
        if single:
            raise
        log.error("job %s failed: %s", hc.job.num, e)
        write_json(
            f"{run_dir}/error.json",
            {
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
                "overrides": list(hc.overrides.task),
            },
        )
        return None
    if not results:  # a data-parallel rank other than 0: rank 0 reports
        return None
    keys = [k for k in ("test/Recall@10", "test/Recall@20", "test/NDCG@10", "test/NDCG@20") if k in results]
    summary = ", ".join(f"{k} {results[k]:.4f}" for k in keys)
    log.info(
        "%s: best epoch %d of %d, %s %.4f, %s (%.2f s/epoch); wrote %s/results.json",
        cfg.model.name,
        results["best_epoch"],
        results["epochs"],
        metric,
        results.get(metric, math.nan),
        summary,
        results["seconds_per_epoch"],
        run_dir,
    )
    return float(results.get(metric, math.nan))


def main() -> None:
    """The ``emmkgr-train`` console script."""
    sys.argv.extend(rank_overrides())
    train()


if __name__ == "__main__":
    main()

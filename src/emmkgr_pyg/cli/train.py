"""``emmkgr-train``: train a recommender from ``conf/`` (``-m`` for sweeps).

Writes ``results.json``, checkpoints and ``embeddings.pt`` in the run folder (``hydra.run.dir``)
and returns validation Recall@20 for sweepers. In a multirun, a failing job writes ``error.json``
in its folder, returns ``None`` (not a number: the Optuna sweeper records the trial as failed; it
cannot take NaN) and the sweep goes on.
"""

from __future__ import annotations

import logging
import math
import traceback

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ..runs import run_training
from ..utils import write_json
from . import CONFIG_PATH

log = logging.getLogger("emmkgr-train")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    run_dir = hc.runtime.output_dir
    metric = f"valid/{cfg.train.metric}"
    try:
        results = run_training(cfg, run_dir)
    except Exception as e:
        if hc.mode != RunMode.MULTIRUN:
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


if __name__ == "__main__":
    main()

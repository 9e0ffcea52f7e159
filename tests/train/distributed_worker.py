"""One training run for test_distributed.py: a process alone, or one rank under ``torchrun`` (or
with ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` set by hand).

    python distributed_worker.py OUT [--model emmkgr] [--schedule alternating]
        [--fail crash|hang --fail-rank 1 --fail-epoch 2] [--timeout 600] [--lr 0.01 --patience 100]

Rank 0 writes OUT (torch.save): the trained parameters, the history and the best metrics.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from emmkgr_pyg.data.dataset import TEST, VALID, MMDataset
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn.emmkgr import EMMKGR
from emmkgr_pyg.nn.recommender import LightGCN
from emmkgr_pyg.train import DataParallel, TrainConfig, Trainer, close_data_parallel, init_data_parallel
from emmkgr_pyg.utils import seed_everything

# global batches that do not split evenly over 2 ranks, and a last batch of each epoch smaller still
CONFIG = {
    "epochs": 3,
    "batch_size": 37,
    "kg_batch_size": 29,
    "lr": 0.01,
    "ks": (5, 10),
    "metric": "Recall@10",
    "progress": False,
    "patience": 100,
    "seed": 0,
}


def train(
    dataset: MMDataset, model: str, schedule: str, parallel: DataParallel, fail=None, **config: Any
) -> dict[str, Any]:
    """Train on ``dataset`` (``config`` overrides :data:`CONFIG`); ``fail=(how, rank, epoch)`` makes
    that rank crash or hang there."""
    seed_everything(0)
    inter = InteractionGraph.from_dataset(dataset)
    valid = RankingEvaluator(inter, *dataset.interactions.part(VALID), ks=(5, 10))
    test = RankingEvaluator(inter, *dataset.interactions.part(TEST), ks=(5, 10))
    if model == "lightgcn":
        # the squared L2 form is a sum over the batch, so shares of it add up exactly; MMRec's
        # norm form (the default) is not additive over slices (docs/beyond_one_machine.md)
        net, view = LightGCN(inter, dim=8, num_layers=2, reg_form="squared"), None
    else:
        kg = build_emmkg(dataset, top_n=3, knn=KNNBuilder(progress=False))
        net = EMMKGR(inter, kg, dim=8, num_layers=2, kg_layers=2, reg_form="squared")
        view = kg_view(kg)
    trainer = Trainer(
        net,
        inter,
        valid,
        test,
        TrainConfig(**{**CONFIG, **config}, schedule=schedule),
        kg=view,
        parallel=parallel,
    )
    if fail is not None and fail[1] == parallel.rank:
        how, _, at_epoch = fail
        epoch = trainer.train_epoch

        def failing_epoch() -> dict[str, float]:
            if trainer.state.epoch + 1 == at_epoch:
                if how == "crash":
                    os._exit(3)
                time.sleep(3600)  # a stuck rank: its peers must give up after the timeout
            return epoch()

        trainer.train_epoch = failing_epoch
    state = trainer.fit()
    return {
        "model": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "history": state.history,
        "best_valid": state.best_valid,
        "best_test": state.best_test,
    }


def _make_dataset() -> MMDataset:
    spec = importlib.util.spec_from_file_location("train_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_dataset()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--model", default="lightgcn")
    p.add_argument("--schedule", default="sum")
    p.add_argument("--fail", choices=["crash", "hang"])
    p.add_argument("--fail-rank", type=int, default=1)
    p.add_argument("--fail-epoch", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--lr", type=float, default=CONFIG["lr"])
    p.add_argument("--patience", type=int, default=CONFIG["patience"])
    args = p.parse_args()
    torch.set_num_threads(1)
    parallel = init_data_parallel(timeout_s=args.timeout)
    fail = (args.fail, args.fail_rank, args.fail_epoch) if args.fail else None
    config = {"lr": args.lr, "patience": args.patience}
    result = train(_make_dataset(), args.model, args.schedule, parallel, fail, **config)
    if parallel.is_main:
        torch.save(result, args.out)
    close_data_parallel()


if __name__ == "__main__":
    sys.exit(main())

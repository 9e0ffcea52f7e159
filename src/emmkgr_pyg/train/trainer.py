"""One training loop for every recommender: BPR plus the model's auxiliary (KG) losses, early
stopping on validation, checkpoints and resumption.

Schedules (``schedule``):

- ``"sum"``: each step adds ``lambda_kg`` times the KG loss of a KG batch to the BPR loss of an
  interaction batch (one propagation serves both);
- ``"alternating"``: each epoch is one pass over all KG triples with its own Adam, then one pass
  over the interactions (the authors' code).

``kg_passes_per_epoch`` says how much KG training an epoch holds: ``None`` (default) is one KG
batch per BPR batch under ``"sum"`` and one pass over all triples under ``"alternating"``; a
number ``p`` is ``p`` passes over all triples either way (under ``"sum"`` each step then adds the
KG losses of ``ceil(p * KG batches / BPR batches)`` KG batches).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..graph.interaction import InteractionGraph
from ..graph.triples import KGView
from ..nn.recommender import Recommender
from ..utils import atomic_path
from .samplers import BPRSampler, KGNegativeSampler

log = logging.getLogger(__name__)

SCHEDULES = ("sum", "alternating")


class Evaluator(Protocol):
    """What the trainer needs of an evaluator (e.g. :class:`emmkgr_pyg.eval.ranking.RankingEvaluator`):
    metrics of a function that scores users ``[B]`` against every item ``[B, n_items]``."""

    def evaluate(
        self, score_fn: Callable[[torch.Tensor], torch.Tensor], prefix: str = ""
    ) -> dict[str, float]: ...


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite."""


@dataclass
class TrainConfig:
    """Settings of :class:`Trainer` (``conf/train/*.yaml``)."""

    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "sum"
    lambda_kg: float = 1.0
    kg_batch_size: int = 2048
    kg_num_negatives: int = 1
    kg_typed_negatives: bool = True
    kg_corrupt_heads: bool = False
    kg_filtered_negatives: bool = True
    kg_filter_any_relation: bool = False
    kg_passes_per_epoch: int | None = None
    kg_lr: float | None = None
    patience: int = 20
    eval_every: int = 1
    eval_batch_size: int = 1024
    metric: str = "Recall@20"
    ks: tuple[int, ...] = (5, 10, 20, 50)
    seed: int = 999
    progress: bool = True
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig: schedule '{self.schedule}' is not one of {SCHEDULES}.")
        self.ks = tuple(int(k) for k in self.ks)
        if self.kg_passes_per_epoch is not None and self.kg_passes_per_epoch < 1:
            raise ValueError(
                "TrainConfig: kg_passes_per_epoch must be at least 1 or null, got "
                f"{self.kg_passes_per_epoch}."
            )
        name, _, k = self.metric.partition("@")
        if name not in ("Recall", "NDCG", "Precision", "MAP") or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(
                f"TrainConfig: metric '{self.metric}' must be Recall|NDCG|Precision|MAP@k "
                f"with k in ks={self.ks}."
            )


@dataclass
class TrainState:
    epoch: int = 0
    best_epoch: int = 0
    best_metric: float = -math.inf
    bad_evals: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    best_test: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


class Trainer:
    """Trains a :class:`Recommender` under the MMRec protocol.

    Args:
        model: the recommender.
        inter: training interactions.
        valid, test: evaluators of the validation and test interactions (:class:`Evaluator`).
        config: a :class:`TrainConfig`.
        kg: the E-MMKG's triples (for models with KG losses).
        out_dir: where ``last.pt`` and ``best.pt`` go (default: no checkpoints).
    """

    def __init__(
        self,
        model: Recommender,
        inter: InteractionGraph,
        valid: Evaluator,
        test: Evaluator | None,
        config: TrainConfig,
        kg: KGView | None = None,
        out_dir: str | Path | None = None,
    ) -> None:
        self.model, self.inter, self.valid, self.test = model, inter, valid, test
        self.cfg = config
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.bpr = BPRSampler(inter, config.batch_size, self.generator)
        self.kg = None
        if kg is not None and model.has_kg_loss and config.lambda_kg > 0:
            self.kg = KGNegativeSampler(
                kg,
                batch_size=config.kg_batch_size,
                num_negatives=config.kg_num_negatives,
                typed=config.kg_typed_negatives,
                corrupt_heads=config.kg_corrupt_heads,
                filtered=config.kg_filtered_negatives,
                filter_any_relation=config.kg_filter_any_relation,
                generator=self.generator,
            )
        self.use_kg = self.kg is not None
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.kg_optimizer = None
        if self.use_kg and config.schedule == "alternating":
            self.kg_optimizer = torch.optim.Adam(params, lr=config.kg_lr or config.lr)
        self.state = TrainState()

    # -- checkpoints -------------------------------------------------------------------------

    def _checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "kg_optimizer": None if self.kg_optimizer is None else self.kg_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "state": asdict(self.state),
            "config": asdict(self.cfg),
        }

    def save(self, name: str, payload: dict[str, Any] | None = None) -> None:
        if self.out_dir is None:
            return
        with atomic_path(self.out_dir / name) as tmp:
            torch.save(payload if payload is not None else self._checkpoint(), tmp)

    def resume(self, path: str | Path) -> None:
        """Continue from a ``last.pt`` written by an earlier run of the same configuration."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.kg_optimizer is not None and ckpt["kg_optimizer"] is not None:
            self.kg_optimizer.load_state_dict(ckpt["kg_optimizer"])
        self.generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.state = TrainState(**ckpt["state"])
        log.info("resumed from %s at epoch %d", path, self.state.epoch)

    # -- training ----------------------------------------------------------------------------

    def _step(self, optimizer: torch.optim.Optimizer, losses: dict[str, torch.Tensor], sums: dict) -> None:
        total = sum(losses.values())
        for name, value in losses.items():
            if not torch.isfinite(value):
                raise NonFiniteLossError(
                    f"epoch {self.state.epoch + 1}: loss term '{name}' is {float(value.detach())}; lower the "
                    "learning rate or the loss weights, or check the input features."
                )
            sums[name] = sums.get(name, 0.0) + float(value.detach())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    def train_epoch(self) -> dict[str, float]:
        """One epoch; returns the mean of every loss term."""
        self.model.train()
        self.model.on_epoch_start()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        bar_kw = {"leave": False, "disable": not self.cfg.progress}
        epoch = self.state.epoch + 1
        if self.use_kg and self.kg_optimizer is not None:
            passes = self.cfg.kg_passes_per_epoch or 1
            batches = (batch for _ in range(passes) for batch in self.kg)
            for batch in tqdm(batches, desc=f"epoch {epoch} KG", total=passes * len(self.kg), **bar_kw):
                losses = self.model.kg_losses(self.model.embed_kg(), batch)
                losses = {k: self.cfg.lambda_kg * v for k, v in losses.items()}
                self._step(self.kg_optimizer, losses, sums)
                for k in losses:
                    counts[k] = counts.get(k, 0) + 1
        kg_batches = self.kg.cycle() if self.use_kg and self.kg_optimizer is None else None
        per_step = self.kg_batches_per_step()
        for users, pos, neg in tqdm(self.bpr, desc=f"epoch {epoch}", total=len(self.bpr), **bar_kw):
            emb = self.model.embed()
            losses = self.model.rec_losses(emb, users, pos, neg)
            if kg_batches is not None:
                for _ in range(per_step):
                    for k, v in self.model.kg_losses(emb, next(kg_batches)).items():
                        losses[k] = losses.get(k, 0.0) + self.cfg.lambda_kg * v
            self._step(self.optimizer, losses, sums)
            for k in losses:
                counts[k] = counts.get(k, 0) + 1
        return {k: v / counts[k] for k, v in sums.items()}

    def kg_batches_per_step(self) -> int:
        """KG batches each BPR step adds under the ``"sum"`` schedule (see the module docstring)."""
        if self.kg is None or self.cfg.kg_passes_per_epoch is None:
            return 1
        return max(1, math.ceil(self.cfg.kg_passes_per_epoch * len(self.kg) / len(self.bpr)))

    @torch.no_grad()
    def evaluate(self, evaluator: Evaluator, prefix: str) -> dict[str, float]:
        self.model.eval()
        emb = self.model.embed()
        return evaluator.evaluate(lambda users: self.model.score(emb, users), prefix=prefix)

    def fit(self) -> TrainState:
        """Train until ``epochs``, early stopping, or ``max_seconds``; returns the final state."""
        cfg, st = self.cfg, self.state
        start = time.perf_counter()
        while st.epoch < cfg.epochs and st.bad_evals < cfg.patience:
            t0 = time.perf_counter()
            losses = self.train_epoch()
            st.train_seconds += time.perf_counter() - t0
            st.epoch += 1
            record: dict[str, Any] = {
                "epoch": st.epoch,
                **{f"loss/{k}": v for k, v in losses.items()},
            }
            if st.epoch % cfg.eval_every == 0 or st.epoch == cfg.epochs:
                t1 = time.perf_counter()
                valid = self.evaluate(self.valid, "valid/")
                record.update(valid)
                score = valid[f"valid/{cfg.metric}"]
                if score > st.best_metric:
                    st.best_metric, st.best_epoch, st.bad_evals = score, st.epoch, 0
                    st.best_valid = valid
                    st.best_test = self.evaluate(self.test, "test/") if self.test is not None else {}
                    self.save("best.pt", {"model": self.model.state_dict(), "epoch": st.epoch})
                else:
                    st.bad_evals += 1
                st.eval_seconds += time.perf_counter() - t1
            record["seconds"] = round(time.perf_counter() - t0, 3)
            st.history.append(record)
            self._log(record)
            self.save("last.pt")
            if cfg.max_seconds and time.perf_counter() - start > cfg.max_seconds:
                log.info("stopping: max_seconds=%s reached", cfg.max_seconds)
                break
        return st

    def _log(self, record: dict[str, Any]) -> None:
        parts = [f"epoch {record['epoch']:4d}"]
        parts += [f"{k[5:]} {v:.4f}" for k, v in record.items() if k.startswith("loss/")]
        m = f"valid/{self.cfg.metric}"
        if m in record:
            parts.append(f"{m} {record[m]:.4f}")
            parts.append(f"(best {self.state.best_metric:.4f} @ {self.state.best_epoch})")
        parts.append(f"{record['seconds']:.2f}s")
        log.info(" | ".join(parts))

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

A NaN or infinite loss term raises :class:`NonFiniteLossError`; a term that grows past
``divergence_factor`` times its first value (at least 1) raises :class:`DivergedLossError`.
``resume`` refuses a checkpoint written under other settings (:data:`RESUMABLE_CHANGES` may differ).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..graph.interaction import InteractionGraph
from ..graph.triples import KGView
from ..nn.blocks import check_rec_loss
from ..nn.recommender import Embeddings, Recommender
from ..utils import ConfigError, atomic_path
from .allocator import ALLOCATORS, use_allocator
from .distributed import DataParallel
from .optim import make_optimizer, resolve_optimizer
from .samplers import BPRSampler, ItemNeighbors, KGNegativeSampler

log = logging.getLogger(__name__)

SCHEDULES = ("sum", "alternating")


class Evaluator(Protocol):
    """What the trainer needs of an evaluator (e.g. :class:`emmkgr_pyg.eval.ranking.RankingEvaluator`):
    metrics of a function that scores users ``[B]`` against every item ``[B, n_items]``."""

    def evaluate(
        self, score_fn: Callable[[torch.Tensor], torch.Tensor], prefix: str = ""
    ) -> dict[str, float]: ...

    def evaluate_many(
        self,
        parts_fn: Callable[[torch.Tensor], Any],
        scorers: Mapping[Hashable, Callable[[Any], torch.Tensor]],
        prefix: str = "",
    ) -> dict[Hashable, dict[str, float]]: ...


#: TrainConfig fields a resumed run may change: they end, pace or show the run, not what it learns.
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "patience",
        "max_seconds",
        "progress",
        "eval_batch_size",
        "divergence_factor",
        "threads",
        "allocator",
        "score_prior",
        "interaction_prior",
    }
)


def _prior_weights(name: str, given: Any) -> tuple[float, ...] | None:
    """``train.<name>`` as ascending weights > 0 (so that ties go to the smaller), or ``None``."""
    if given is None:
        return None
    try:
        weights = tuple(float(w) for w in (given if isinstance(given, (list, tuple)) else [given]))
    except (TypeError, ValueError):
        weights = ()
    if not weights or min(weights) <= 0:
        raise ConfigError(
            f"train.{name} must be null or weights > 0 to choose from on validation "
            f"(e.g. [0.03, 0.1, 0.3, 1.0]), got {given}."
        )
    return tuple(sorted(weights))


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite."""


class DivergedLossError(NonFiniteLossError):
    """A loss term grew by orders of magnitude over its first value: the run diverged."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to this configuration or model."""


@dataclass
class TrainConfig:
    """Settings of :class:`Trainer` (``conf/train/*.yaml``)."""

    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "sum"
    lambda_kg: float = 1.0
    num_negatives: int = 1
    hard_negatives: int = 0
    rec_loss: str = "bpr"
    rec_temperature: float = 1.0
    score_prior: float | tuple[float, ...] | None = None
    interaction_prior: float | tuple[float, ...] | None = None
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
    divergence_factor: float | None = 1e6
    # mini-batch mode and run settings, read by runs/compose.py and train/sampled.py
    propagation: str = "full"
    fanout: int | tuple[int, ...] = 16
    sampler: str = "auto"
    threads: int | str = "auto"
    optimizer: str = "auto"
    allocator: str = "auto"

    def __post_init__(self) -> None:
        if self.allocator not in ALLOCATORS:
            raise ValueError(f"train.allocator: '{self.allocator}' is not one of {ALLOCATORS}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig: schedule '{self.schedule}' is not one of {SCHEDULES}.")
        self.ks = tuple(int(k) for k in self.ks)
        check_rec_loss(self.rec_loss, self.rec_temperature)
        self.score_prior = _prior_weights("score_prior", self.score_prior)
        self.interaction_prior = _prior_weights("interaction_prior", self.interaction_prior)
        if self.num_negatives < 1:
            raise ConfigError(f"train.num_negatives must be at least 1, got {self.num_negatives}.")
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
    first_loss: dict[str, float] = field(default_factory=dict)


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (a tensor, a tuple of them, or a dataclass of them such as ``KGBatch``) on
    ``device``; tensors already there are returned as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple):
        return tuple(to_device(b, device) for b in batch)
    if dataclasses.is_dataclass(batch):
        return dataclasses.replace(
            batch, **{f.name: to_device(getattr(batch, f.name), device) for f in dataclasses.fields(batch)}
        )
    return batch


class Trainer:
    """Trains a :class:`Recommender` under the MMRec protocol.

    Args:
        model: the recommender.
        inter: training interactions.
        valid, test: evaluators of the validation and test interactions (:class:`Evaluator`).
        config: a :class:`TrainConfig`.
        kg: the E-MMKG's triples (for models with KG losses).
        out_dir: where ``last.pt`` and ``best.pt`` go (default: no checkpoints).
        parallel: this process's rank in a data-parallel job (default: one process); see
            :mod:`emmkgr_pyg.train.distributed`.
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
        parallel: DataParallel | None = None,
    ) -> None:
        self.model, self.inter, self.valid, self.test = model, inter, valid, test
        # batches are drawn on the CPU and moved to where the model is (see runs: device=...)
        self.device = next(iter(model.parameters()), torch.empty(0)).device
        self.cfg = config
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.generator = torch.Generator().manual_seed(config.seed)
        neighbors = None
        if config.hard_negatives:
            graph = model.item_neighbors()
            if graph is None:
                raise ConfigError(
                    f"train.hard_negatives={config.hard_negatives}: {type(model).__name__} has no "
                    "item-item graph to draw them from; set train.hard_negatives=0."
                )
            neighbors = ItemNeighbors(*graph, inter.n_items)
        self.bpr = BPRSampler(
            inter, config.batch_size, self.generator, config.num_negatives, config.hard_negatives, neighbors
        )
        model.set_rec_loss(config.rec_loss, config.rec_temperature)
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
        self.params = params = [p for p in model.parameters() if p.requires_grad]
        opt = (model, params, config.optimizer, config.propagation)
        self.optimizer = make_optimizer(*opt, config.lr, config.weight_decay)
        self.kg_optimizer = None
        if self.use_kg and config.schedule == "alternating":
            self.kg_optimizer = make_optimizer(*opt, config.kg_lr or config.lr)
        # data parallel: every rank starts from rank 0's parameters, draws the same global batches
        # (same seeded generator) and trains on its slice of each
        self.parallel = parallel or DataParallel()
        self.parallel.broadcast_module(model)
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
        if self.out_dir is None or not self.parallel.is_main:
            return
        with atomic_path(self.out_dir / name) as tmp:
            torch.save(payload if payload is not None else self._checkpoint(), tmp)

    def resume(self, path: str | Path, force: bool = False) -> None:
        """Continue from a ``last.pt`` written by an earlier run of the same configuration.

        A checkpoint saved under other settings (other than :data:`RESUMABLE_CHANGES`) is refused
        with :class:`CheckpointMismatchError` unless ``force``; a model of another shape always is.
        """
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - truncated file, foreign pickle, ...
            first_line = (str(e).strip().splitlines() or [""])[0]
            raise CheckpointMismatchError(
                f"{path}: not a readable checkpoint ({type(e).__name__}: {first_line}); "
                "delete it to start over."
            ) from e
        changed = config_changes(ckpt.get("config") or {}, asdict(self.cfg))
        if changed and not force:
            raise CheckpointMismatchError(
                f"{path} was written with other train settings ({'; '.join(changed)}); restore "
                "them, start a new run folder, or use resume=force to override."
            )
        if changed:
            log.warning("resuming %s although train settings changed: %s", path, "; ".join(changed))
        mismatch = _shape_mismatch(self.model.state_dict(), ckpt["model"])
        if mismatch:
            raise CheckpointMismatchError(
                f"{path} holds another model shape ({mismatch}); the model config changed since it "
                "was written. Restore it or start a new run folder (resume=force cannot help)."
            )
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
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        # summed over ranks (data parallel) before the check, so that every rank raises together
        values = self.parallel.all_reduce(self.params, losses)
        for name, value in values.items():
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"epoch {self.state.epoch + 1}: loss term '{name}' is {value}; lower the "
                    "learning rate or the loss weights, or check the input features."
                )
            first = self.state.first_loss.setdefault(name, value)
            factor = self.cfg.divergence_factor
            if factor is not None and abs(value) > factor * max(abs(first), 1.0):
                raise DivergedLossError(
                    f"epoch {self.state.epoch + 1}: loss term '{name}' is {value:.3g}, over "
                    f"{factor:g} times its first value {first:.3g}: training "
                    "diverged. Lower the learning rate (train.lr) or the loss weights."
                )
            sums[name] = sums.get(name, 0.0) + value
        optimizer.step()

    def train_epoch(self) -> dict[str, float]:
        """One epoch; returns the mean of every loss term."""
        self.model.train()
        self.model.on_epoch_start()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        bar_kw = {"leave": False, "disable": not (self.cfg.progress and self.parallel.is_main)}
        epoch = self.state.epoch + 1
        if self.use_kg and self.kg_optimizer is not None:
            passes = self.cfg.kg_passes_per_epoch or 1
            batches = (batch for _ in range(passes) for batch in self.kg)
            for batch in tqdm(batches, desc=f"epoch {epoch} KG", total=passes * len(self.kg), **bar_kw):
                batch, share = self.parallel.shard(batch)
                batch = to_device(batch, self.device)
                losses = self.model.kg_losses(self.model.embed_kg(), batch)
                losses = {k: self.cfg.lambda_kg * share * v for k, v in losses.items()}
                self._step(self.kg_optimizer, losses, sums)
                for k in losses:
                    counts[k] = counts.get(k, 0) + 1
        kg_batches = self.kg.cycle() if self.use_kg and self.kg_optimizer is None else None
        per_step = self.kg_batches_per_step()
        for batch in tqdm(self.bpr, desc=f"epoch {epoch}", total=len(self.bpr), **bar_kw):
            (users, pos, neg), share = self.parallel.shard(batch)
            users, pos, neg = to_device((users, pos, neg), self.device)
            emb = self.model.embed()
            losses = {k: share * v for k, v in self.model.rec_losses(emb, users, pos, neg).items()}
            if kg_batches is not None:
                for _ in range(per_step):
                    kg_batch, kg_share = self.parallel.shard(next(kg_batches))
                    kg_batch = to_device(kg_batch, self.device)
                    for k, v in self.model.kg_losses(emb, kg_batch).items():
                        losses[k] = losses.get(k, 0.0) + self.cfg.lambda_kg * kg_share * v
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
    def evaluate(self, evaluator: Evaluator, prefix: str, emb: Embeddings | None = None) -> dict[str, float]:
        """``evaluator``'s metrics of the model's scores (``emb``: embeddings already computed)."""
        self.model.eval()
        emb = self.model.embed() if emb is None else emb
        return evaluator.evaluate(lambda users: self.model.score(emb, users), prefix=prefix)

    @torch.no_grad()
    def choose_score_prior(self) -> dict[str, Any]:
        """``train.score_prior`` / ``train.interaction_prior``: at the model's current (the best)
        parameters, the weights of the priors of :mod:`~emmkgr_pyg.nn.score_prior` with the best
        validation metric among every pair of 0 (none) and the configured weights, ties to the
        smaller sum; the model keeps them. Returns ``{"weight", "interaction_weight",
        "valid_by_weight", "valid", "test"}`` (test at the chosen weights only; ``valid_by_weight``
        keyed by the neighbourhood weight, or by ``"<weight>,<interaction weight>"`` when an
        interaction prior is configured)."""
        metric, best, by_weight = f"valid/{self.cfg.metric}", None, {}
        model = self.model
        model.eval()
        emb = model.embed()  # once: the weights change the scoring, not the embeddings
        weights, inter_weights = (
            (0.0, *(self.cfg.score_prior or ())),
            (0.0, *(self.cfg.interaction_prior or ())),
        )
        grid = sorted(((w, wi) for w in weights for wi in inter_weights), key=sum)  # ties to the smaller
        model.set_score_prior(max(weights), self.inter, max(inter_weights))  # builds the priors asked for
        # one pass over the users: the embedding scores and the priors once per batch for every pair
        by_pair = self.valid.evaluate_many(
            lambda users: model.score_parts(emb, users, bool(max(weights)), bool(max(inter_weights))),
            {pair: (lambda parts, pair=pair: model.fuse_scores(parts, *pair)) for pair in grid},
            "valid/",
        )
        for weight, inter_weight in grid:
            valid = by_pair[(weight, inter_weight)]
            by_weight[f"{weight},{inter_weight}" if self.cfg.interaction_prior else weight] = valid[metric]
            if best is None or valid[metric] > best[2][metric]:
                best = (weight, inter_weight, valid)
        model.set_score_prior(best[0], self.inter, best[1])
        test = self.evaluate(self.test, "test/", emb) if self.test is not None else {}
        log.info("score prior: weights %s, %s by %s %s", best[0], best[1], metric, by_weight)
        return {
            "weight": best[0],
            "interaction_weight": best[1],
            "valid_by_weight": by_weight,
            "valid": best[2],
            "test": test,
        }

    def fit(self) -> TrainState:
        """Train until ``epochs``, early stopping, or ``max_seconds``; returns the final state.
        ``train.allocator`` holds while an epoch trains (:mod:`.allocator`), not while it is
        evaluated, so that evaluation's memory is what it was."""
        cfg, st = self.cfg, self.state
        start = time.perf_counter()
        while st.epoch < cfg.epochs and st.bad_evals < cfg.patience:
            t0 = time.perf_counter()
            with use_allocator(cfg.allocator):
                losses = self.train_epoch()
            st.train_seconds += time.perf_counter() - t0
            st.epoch += 1
            record: dict[str, Any] = {
                "epoch": st.epoch,
                **{f"loss/{k}": v for k, v in losses.items()},
            }
            if self.parallel.is_main and (st.epoch % cfg.eval_every == 0 or st.epoch == cfg.epochs):
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
            timed_out = bool(cfg.max_seconds) and time.perf_counter() - start > cfg.max_seconds
            if self.parallel.decide(timed_out or st.bad_evals >= cfg.patience):  # rank 0 decides
                if timed_out:
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


#: TrainConfig fields added after checkpoints were written, with what those runs did
LEGACY_SETTINGS = {
    "optimizer": "adam",
    "num_negatives": 1,
    "hard_negatives": 0,
    "rec_loss": "bpr",
    "rec_temperature": 1.0,
}


def _effective(config: dict[str, Any]) -> dict[str, Any]:
    """A saved or current TrainConfig as what it does: missing newer fields at their legacy value,
    ``optimizer`` resolved (``auto`` under full propagation is ``adam``)."""
    out = {**LEGACY_SETTINGS, **config}
    try:
        out["optimizer"] = resolve_optimizer(out["optimizer"], out.get("propagation", "full"))
    except ValueError:
        pass  # left as written: the comparison then shows it
    return out


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"key: saved -> current"`` for every setting that differs in effect, except
    :data:`RESUMABLE_CHANGES`."""
    saved, current = _effective(saved), _effective(current)
    out = []
    for key in sorted(set(saved) | set(current)):
        if key in RESUMABLE_CHANGES:
            continue
        a, b = saved.get(key, "<unset>"), current.get(key, "<unset>")
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            a, b = list(a), list(b)
        if a != b:
            out.append(f"{key}: {a} -> {b}")
    return out


def _shape_mismatch(expected: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> str:
    """The first difference between two state dicts' keys or shapes, or ``""``."""
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    if missing or extra:
        return f"missing {missing[:3]}, unexpected {extra[:3]}"
    for k, v in expected.items():
        if tuple(v.shape) != tuple(saved[k].shape):
            return f"'{k}' is {tuple(saved[k].shape)} there, {tuple(v.shape)} here"
    return ""

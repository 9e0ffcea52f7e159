"""Data-parallel training on ``torch.distributed``: one model, its batches split across processes.

``torchrun --nproc_per_node=N $(which emmkgr-train) ...`` starts N ranks. Every rank builds the same
data, graph and model (same seed), draws the *global* batch from the same seeded generator and keeps
its contiguous slice of it; after ``backward`` the gradients are summed across ranks, each rank
having weighted its loss terms by its share of the global batch, so every rank applies the gradient
of the whole global batch and the parameters stay identical. Rank 0 evaluates, checkpoints and
writes the run folder; it alone decides when training stops.

Why an explicit all-reduce instead of wrapping the model in ``DistributedDataParallel``: a
recommender here is not driven through ``forward`` but through ``embed()``, ``rec_losses()`` and
``kg_losses()``, each step propagates over the full graph, and which parameters receive a gradient
changes between steps (the alternating schedule). DDP's reducer assumes one ``forward`` per step
over a fixed set of used parameters. Summing share-weighted gradients after ``backward`` computes
the same update DDP does (its average over equal shares), in one flat all-reduce per step; what it
gives up is overlapping the communication with ``backward``, which matters little when the
replicated propagation dominates the step.

The update equals the single-process one with the same ``batch_size`` exactly (up to float
summation order) when every loss term is a mean over the batch or does not depend on it (BPR, the
L2 term, the KG loss); random draws a model makes per batch row (e.g. BM3's dropout) differ.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

Batch = TypeVar("Batch")

#: seconds a rank waits in a collective before failing (a crashed or stuck peer ends the job)
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel job; ``DataParallel()`` is one process alone, whose
    methods change nothing.

    Args:
        rank: this process's rank (default ``0``).
        world_size: the number of processes (default ``1``).
    """

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"DataParallel: rank {self.rank} is outside world_size {self.world_size}.")

    @property
    def is_main(self) -> bool:
        """Whether this rank evaluates and writes (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def shard(self, batch: Batch) -> tuple[Batch, float]:
        """This rank's contiguous slice of a global batch (a tuple of tensors or a dataclass of
        tensors, all ``[B, ...]``) and its share of the batch.

        A rank left without rows (``B < world_size``) gets the first row with share ``0``, so that
        every rank runs the same computation and contributes a zero gradient.
        """
        if not self.enabled:
            return batch, 1.0
        n = _rows(batch)
        start, end = n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size
        if start == end:
            return _slice(batch, slice(0, 1)), 0.0
        return _slice(batch, slice(start, end)), (end - start) / n

    def all_reduce(self, params: Iterable[Tensor], losses: dict[str, Tensor]) -> dict[str, float]:
        """Sum the gradients of ``params`` and the (share-weighted) loss values over ranks, in one
        all-reduce; returns the summed loss values. One process: the loss values as they are."""
        values = torch.stack([v.detach().float() for v in losses.values()]) if losses else torch.zeros(0)
        if not self.enabled:
            return dict(zip(losses, values.tolist(), strict=True))
        grads = [p.grad for p in params if p.grad is not None]
        device = grads[0].device if grads else values.device
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [values.to(device)])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        return dict(zip(losses, flat[offset:].tolist(), strict=True))

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers."""
        if self.enabled:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (e.g. its run folder)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def decide(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (whether to stop: only rank 0 evaluates)."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)], device=_collective_device())
        dist.broadcast(t, src=0)
        return bool(t.item())


def _rows(batch: Any) -> int:
    first = batch[0] if isinstance(batch, tuple) else getattr(batch, dataclasses.fields(batch)[0].name)
    return int(first.size(0))


def _slice(batch: Batch, rows: slice) -> Batch:
    if isinstance(batch, tuple):
        return tuple(t[rows] for t in batch)
    if dataclasses.is_dataclass(batch):
        return dataclasses.replace(
            batch, **{f.name: getattr(batch, f.name)[rows] for f in dataclasses.fields(batch)}
        )
    raise TypeError(
        f"DataParallel.shard: cannot split a {type(batch).__name__}; give a tuple or a dataclass."
    )


def _collective_device() -> torch.device:
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )


def init_data_parallel(timeout_s: float = DEFAULT_TIMEOUT_S, backend: str | None = None) -> DataParallel:
    """Join the process group that ``torchrun`` (or Slurm's ``srun`` with the same variables)
    describes in ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
    without them (or with ``WORLD_SIZE=1``) this is one process alone.

    Args:
        timeout_s: how long a rank waits in a collective before it fails with an error, so that a
            crashed or stuck rank ends the job instead of hanging it (default ``600``).
        backend: ``torch.distributed`` backend (default: gloo for CPU tensors, plus nccl for CUDA
            tensors when CUDA is available, each rank on GPU ``LOCAL_RANK``).

    Ranks other than 0 log warnings and errors only.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DataParallel()
    if not dist.is_initialized():
        if backend is None:
            backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    parallel = DataParallel(dist.get_rank(), dist.get_world_size())
    if not parallel.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    return parallel


def close_data_parallel() -> None:
    """Leave the process group (at the end of a run; a no-op for one process)."""
    if dist.is_initialized():
        dist.destroy_process_group()

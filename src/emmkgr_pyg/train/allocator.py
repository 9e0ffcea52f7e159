"""The ``train.allocator`` setting: how the C allocator treats the large blocks a training step frees.

A training step allocates temporaries of tens of MiB (a sampled subgraph's ``[nodes, d]``
embeddings at every layer, their gradients). glibc's ``malloc`` serves every block above 32 MiB
(its largest ``mmap`` threshold) with a fresh ``mmap`` and returns it with ``munmap`` when torch
frees it, so each step touches new pages, which the kernel faults in and zeroes one by one. In a
profile of a sampled step on the 1M-item generated catalogue (fan-out 10,5), ``copy_``, ``index``
and ``fill_`` on subgraph-sized tensors took 42% of the step. Measured side by side in one process
(``benchmarks/scale.py``'s setting, 24 steps each way, alternating): 1M items 2.13 -> 1.50 s/step,
100k items 0.97 -> 0.76 s/step (medians), full-graph E-MMKGR at Clothing scale 38.5 -> 36.8 s per
epoch; the training peak RSS grew by 0.6 GiB at 1M (the freed blocks stay mapped).

- ``reuse``: glibc serves large blocks from its heap and keeps what is freed for the next step
  (``mallopt(M_MMAP_MAX, 0)``, ``M_TRIM_THRESHOLD`` 2 GiB); on leaving, the defaults come back and
  the retained memory is handed back (``malloc_trim``).
- ``system``: the allocator as the process started.
- ``auto`` (default): ``reuse`` on glibc unless the environment already tunes ``malloc``
  (``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TOP_PAD_``)
  or preloads another allocator (``LD_PRELOAD``: jemalloc, tcmalloc, mimalloc); else ``system``.

Process-wide, like torch's thread count: :meth:`~emmkgr_pyg.train.Trainer.fit` applies it while
each epoch trains (evaluation runs with the defaults); code that calls ``train_epoch`` itself wraps
it in :func:`use_allocator`. glibc stops adapting its mmap threshold once ``mallopt`` has been
called, so after the first epoch the threshold stays where it was then.
Code that frees a trainer to make room (``benchmarks/scale.py`` before evaluating a million items)
calls :func:`release_free_memory` after it.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

ALLOCATORS = ("auto", "reuse", "system")

# glibc's mallopt parameters (malloc.h) and their defaults
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
REUSE_TRIM_THRESHOLD = 2**31 - 1  # the largest an int takes: freed memory stays below 2 GiB of slack

_MALLOC_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def glibc() -> ctypes.CDLL | None:
    """The C library when this process allocates with glibc's ``malloc``, else ``None``."""
    if any(name in os.environ.get("LD_PRELOAD", "") for name in _OTHER_ALLOCATORS):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def resolve_allocator(setting: str) -> str:
    """``reuse`` or ``system``: what ``setting`` stands for in this process."""
    if setting not in ALLOCATORS:
        raise ValueError(f"train.allocator: '{setting}' is not one of {ALLOCATORS}.")
    if setting == "auto":
        tuned = any(name in os.environ for name in _MALLOC_ENV)
        return "reuse" if glibc() is not None and not tuned else "system"
    if setting == "reuse" and glibc() is None:
        raise ValueError(
            "train.allocator=reuse: this process does not allocate with glibc's malloc (another C "
            "library, or LD_PRELOAD names another allocator); set train.allocator=auto or system."
        )
    return setting


def release_free_memory() -> bool:
    """Hand the free pages inside glibc's heap back to the system (``malloc_trim``); blocks
    allocated under ``reuse`` and freed after it (an optimiser's state, when its trainer goes)
    otherwise stay resident. ``False`` where the allocator is not glibc's."""
    libc = glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@contextmanager
def use_allocator(setting: str) -> Iterator[str]:
    """Within the block, the allocator ``setting`` names (see the module); yields what it resolved to."""
    resolved = resolve_allocator(setting)
    libc = glibc() if resolved == "reuse" else None
    if libc is None:
        yield resolved
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, REUSE_TRIM_THRESHOLD)
    try:
        yield resolved
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        release_free_memory()

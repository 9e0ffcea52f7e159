"""The ``train.threads`` setting: how many threads torch uses in a run (``auto`` or a number).

``auto`` is ``OMP_NUM_THREADS`` when the environment sets it, else the number of cores this
process may run on. Applied at the start of a run (:func:`apply_threads`); the OpenMP wait policy
that keeps those threads from spinning is set when :mod:`emmkgr_pyg` is imported.
"""

from __future__ import annotations

import os

import torch


def resolve_threads(setting: int | str) -> int:
    """The number of threads ``setting`` stands for."""
    if setting == "auto":
        env = os.environ.get("OMP_NUM_THREADS", "")
        if env.isdigit() and int(env) > 0:
            return int(env)
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1
    if isinstance(setting, int) or (isinstance(setting, str) and setting.isdigit()):
        if int(setting) > 0:
            return int(setting)
    raise ValueError(f"train.threads: '{setting}' is not 'auto' or a positive number.")


def apply_threads(setting: int | str) -> int:
    """Set torch's intra-op threads from ``setting``; returns the number."""
    n = resolve_threads(setting)
    torch.set_num_threads(n)
    return n

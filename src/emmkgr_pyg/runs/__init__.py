"""Runs: composing a configuration into a trained run folder, and loading one back.

This layer sits above ``train``, ``eval`` and ``search`` and below ``cli``: it is the one place
that knows what a run folder holds (:mod:`.artifacts`).
"""

from . import artifacts
from .compose import build_graph, run_training, train_config
from .load import TrainedRun, load_run

__all__ = ["TrainedRun", "artifacts", "build_graph", "load_run", "run_training", "train_config"]

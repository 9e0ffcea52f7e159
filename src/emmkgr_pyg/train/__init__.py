"""Training loops, samplers, early stopping and checkpoints."""

from .distributed import DataParallel, close_data_parallel, init_data_parallel
from .samplers import BPRSampler, ItemNeighbors, KGNegativeSampler
from .trainer import NonFiniteLossError, TrainConfig, Trainer

__all__ = [
    "BPRSampler",
    "ItemNeighbors",
    "DataParallel",
    "KGNegativeSampler",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "close_data_parallel",
    "init_data_parallel",
]

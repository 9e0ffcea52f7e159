"""Training loops, samplers, early stopping and checkpoints."""

from .samplers import BPRSampler, KGNegativeSampler
from .trainer import NonFiniteLossError, TrainConfig, Trainer

__all__ = ["BPRSampler", "KGNegativeSampler", "NonFiniteLossError", "TrainConfig", "Trainer"]

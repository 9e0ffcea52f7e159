"""Training loops, samplers, early stopping, checkpoints and the training pipeline."""

from .samplers import BPRSampler, KGNegativeSampler
from .trainer import NonFiniteLossError, TrainConfig, Trainer

__all__ = ["BPRSampler", "KGNegativeSampler", "NonFiniteLossError", "TrainConfig", "Trainer"]

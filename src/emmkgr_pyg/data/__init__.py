"""Datasets: catalogues, interactions, splits, on-disk formats, feature encoders and their cache."""

from .dataset import (
    TEST,
    TRAIN,
    UNSPLIT,
    VALID,
    Catalog,
    DataError,
    Interactions,
    MMDataset,
    Modality,
)
from .split import mmrec_split

__all__ = [
    "TEST",
    "TRAIN",
    "UNSPLIT",
    "VALID",
    "Catalog",
    "DataError",
    "Interactions",
    "MMDataset",
    "Modality",
    "mmrec_split",
]

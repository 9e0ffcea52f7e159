"""Dataset readers, one per on-disk format; each is a ``_target_`` of a ``conf/dataset`` config."""

from .amazon_raw import AmazonRawReader
from .base import Reader, finalize
from .lattice import LatticeReader
from .lcrec_json import LcRecJsonReader, text_modality
from .mmrec import MMRecReader, write_mmrec

__all__ = [
    "AmazonRawReader",
    "LatticeReader",
    "LcRecJsonReader",
    "MMRecReader",
    "Reader",
    "finalize",
    "text_modality",
    "write_mmrec",
]

"""Dataset readers, one per on-disk format; each is a ``_target_`` of a ``conf/dataset`` config."""

from .base import Reader, finalize
from .lcrec_json import LcRecJsonReader, text_modality

__all__ = ["LcRecJsonReader", "Reader", "finalize", "text_modality"]

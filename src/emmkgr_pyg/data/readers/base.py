"""What every reader shares: the reader interface and the last steps of building a dataset."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..dataset import (
    UNSPLIT,
    Catalog,
    DataError,
    Interactions,
    MMDataset,
    drop_duplicate_interactions,
)
from ..split import mmrec_split

log = logging.getLogger(__name__)


class Reader:
    """A dataset reader: ``reader.read(root, name)`` returns a split, validated :class:`MMDataset`.

    Subclasses take their options as keyword arguments, so that a Hydra config can build them with
    ``_target_``. ``split_seed`` seeds the MMRec split where the source carries no split.
    """

    #: the files a folder of this format must hold, for error messages (formatted with the options)
    expected_files: tuple[str, ...] = ()

    def __init__(self, split_seed: int = 999) -> None:
        self.split_seed = split_seed

    def read(self, root: str | Path | None, name: str) -> MMDataset:
        raise NotImplementedError

    def require(self, root: Path, filename: str, what: str) -> Path:
        """The path of a required file, or a :class:`DataError` naming it and the format."""
        path = root / filename
        if not path.is_file():
            raise DataError(
                f"{type(self).__name__}: missing file {path} ({what}). This format expects "
                f"{', '.join(self.expected_files) or filename} in the dataset folder "
                f"(dataset.root={root})."
            )
        return path


def finalize(
    name: str,
    user_ids: list[str],
    user: np.ndarray,
    item: np.ndarray,
    catalog: Catalog,
    *,
    split: np.ndarray | None = None,
    split_seed: int = 999,
    rating: np.ndarray | None = None,
    timestamp: np.ndarray | None = None,
    report: dict | None = None,
    source: str = "dataset",
) -> MMDataset:
    """Drop duplicate interactions (counted), split by the MMRec protocol when ``split`` is None,
    and validate."""
    report = dict(report or {})
    user = np.asarray(user, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    keep, n_dup = drop_duplicate_interactions(user, item)
    report["duplicate_interactions_dropped"] = n_dup
    if n_dup:
        log.warning("%s: dropped %d duplicate (user, item) interactions", source, n_dup)
    user, item = user[keep], item[keep]
    rating = None if rating is None else np.asarray(rating)[keep]
    timestamp = None if timestamp is None else np.asarray(timestamp)[keep]
    if split is None:
        split = mmrec_split(user, seed=split_seed)
        report["split"] = f"mmrec protocol, seed {split_seed}"
    else:
        split = np.asarray(split)[keep]
        if (split == UNSPLIT).any():
            raise DataError(f"{source}: some interactions have no split label.")
    ds = MMDataset(
        name=name,
        user_ids=list(user_ids),
        interactions=Interactions(user, item, split, rating, timestamp),
        catalog=catalog,
        report=report,
    )
    ds.validate(source)
    return ds

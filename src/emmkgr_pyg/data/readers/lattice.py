"""The LATTICE data format (Zhang et al., 2021; also used by MICRO, MMHCL and others).

``<subdir>/5-core/{train,val,test}.json`` map each user index (a string key) to a list of item
indices; ``<subdir>/item2id.json`` maps ASINs and ``<subdir>/user2id.json`` reviewer ids to those
indices, which run ``0..n-1``. No item text ships with this format: the catalogue has ASINs (and the
image URLs of an optional ``itemID,asin,imUrl`` CSV, joined by ASIN) but no modality. The split is
LATTICE's own unless ``resplit`` asks for the MMRec protocol.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import TEST, TRAIN, VALID, Catalog, DataError, MMDataset
from .base import Reader, finalize
from .lcrec_json import _load_json

SPLIT_FILES = {"train": TRAIN, "val": VALID, "test": TEST}
URL_COLUMNS = ("asin", "imUrl")


class LatticeReader(Reader):
    """Read a LATTICE dataset folder.

    Args:
        subdir: the folder under ``dataset.root`` that holds ``5-core/`` and the id maps.
        resplit: ``False`` keeps LATTICE's train/val/test split; ``True`` ignores it and applies
            the MMRec protocol with ``split_seed``.
        url_file: an optional CSV under ``dataset.root`` with ``asin`` and ``imUrl`` columns (e.g.
            ``mmrec_format/baby_url.csv``); its URLs become catalogue metadata.
        split_seed: the seed of the MMRec split when ``resplit`` is set.
    """

    def __init__(
        self,
        subdir: str = "lattice_format",
        resplit: bool = False,
        url_file: str | None = None,
        split_seed: int = 999,
    ) -> None:
        super().__init__(split_seed)
        self.subdir = subdir
        self.resplit = resplit
        self.url_file = url_file
        self.expected_files = (
            *(f"{subdir}/5-core/{s}.json" for s in SPLIT_FILES),
            f"{subdir}/item2id.json",
            f"{subdir}/user2id.json",
        )

    def read(self, root: str | Path | None, name: str) -> MMDataset:
        if root is None:
            raise DataError("LatticeReader: dataset.root is not set; point it at the folder.")
        root = Path(root)
        split_paths = {
            s: self.require(root, f"{self.subdir}/5-core/{s}.json", "{user index: [item index]}")
            for s in SPLIT_FILES
        }
        item_ids = _id_list(self.require(root, f"{self.subdir}/item2id.json", "{asin: index}"))
        user_ids = _id_list(self.require(root, f"{self.subdir}/user2id.json", "{user: index}"))

        parts = [_read_split(path, len(user_ids), len(item_ids)) for path in split_paths.values()]
        user = np.concatenate([u for u, _ in parts])
        item = np.concatenate([i for _, i in parts])
        report: dict[str, Any] = {}
        split = None
        if not self.resplit:
            split = np.repeat(np.array(list(SPLIT_FILES.values()), dtype=np.int8), [len(u) for u, _ in parts])
            report["split"] = f"LATTICE's own ({', '.join(f'{s}.json' for s in SPLIT_FILES)})"

        image_urls: list[list[str]] = []
        if self.url_file is not None:
            image_urls = self._read_urls(root, item_ids, report)
        n = len(item_ids)
        catalog = Catalog(item_ids, [None] * n, [None] * n, [[] for _ in range(n)], image_urls)
        return finalize(
            name,
            user_ids,
            user,
            item,
            catalog,
            split=split,
            split_seed=self.split_seed,
            report=report,
            source=str(split_paths["train"]),
        )

    def _read_urls(self, root: Path, item_ids: list[str], report: dict[str, Any]) -> list[list[str]]:
        """Image URLs per item from the ``asin,imUrl`` CSV; counts rows naming unknown ASINs."""
        path = self.require(root, str(self.url_file), "CSV with columns asin, imUrl")
        index = {a: i for i, a in enumerate(item_ids)}
        urls: list[list[str]] = [[] for _ in item_ids]
        unknown = 0
        with open(path, encoding="utf-8", newline="") as f:
            rows = csv.DictReader(f)
            missing = [c for c in URL_COLUMNS if c not in (rows.fieldnames or [])]
            if missing:
                raise DataError(
                    f"{path}: no column {', '.join(missing)} in the header {rows.fieldnames}; the "
                    "URL file needs asin and imUrl columns (or set dataset.reader.url_file=null)."
                )
            for row in rows:
                i = index.get(row["asin"])
                if i is None:
                    unknown += 1
                elif row["imUrl"] and row["imUrl"].strip():
                    urls[i] = [row["imUrl"].strip()]
        report["url_rows_unknown_asin"] = unknown
        report["items_without_image_url"] = sum(not u for u in urls)
        return urls


def _id_list(path: Path) -> list[str]:
    """External ids by index from an ``{id: index}`` map whose indices run ``0..n-1``."""
    mapping = _load_json(path, dict)
    try:
        index = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: indices must be integers ({e}).") from e
    if not np.array_equal(np.sort(index), np.arange(len(index))):
        raise DataError(
            f"{path}: the indices are not 0..{len(index) - 1}, each once (gaps or repeats); "
            "regenerate the id map."
        )
    ids = np.empty(len(index), dtype=object)
    ids[index] = list(mapping.keys())
    return ids.tolist()


def _read_split(path: Path, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of one ``{user index: [item index, ...]}`` split file, range-checked."""
    data = _load_json(path, dict)
    bad = next((k for k, v in data.items() if not isinstance(v, list)), None)
    if bad is not None:
        raise DataError(
            f"{path}: user '{bad}' maps to {type(data[bad]).__name__}; expected a list of item indices."
        )
    lengths = np.fromiter((len(v) for v in data.values()), dtype=np.int64, count=len(data))
    try:
        users = np.fromiter(data.keys(), dtype=np.int64, count=len(data))
        items = np.fromiter(
            itertools.chain.from_iterable(data.values()), dtype=np.int64, count=int(lengths.sum())
        )
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: user keys and item entries must be integer indices ({e}).") from e
    for what, arr, n in (("user", users, n_users), ("item", items, n_items)):
        outside = arr[(arr < 0) | (arr >= n)]
        if len(outside):
            raise DataError(
                f"{path}: {len(outside)} {what} indices outside 0..{n - 1}, the range of "
                f"{what}2id.json (e.g. {int(outside[0])}); use the id maps of this split."
            )
    return np.repeat(users, lengths), items

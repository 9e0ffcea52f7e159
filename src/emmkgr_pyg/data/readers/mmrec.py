"""The MMRec toolbox format that multimodal-recommendation papers ship, and a writer for it.

A dataset folder holds ``<name>.inter`` (tab-separated, header ``userID itemID rating timestamp
x_label``; ``x_label`` 0/1/2 = train/valid/test; ``rating`` and ``timestamp`` may be absent) and one
``<modality>_feat.npy`` per modality (row ``i`` = item ``i``).

The format cannot say that an item lacks a modality, nor carry titles or raw texts. The writer
therefore fills the rows of items without a modality with the modality's mean vector (MMRec's own
rule), and writes beside them what MMRec ignores and this reader uses when present:
``<modality>_items.npy`` (the items that really have the modality), ``i_id_mapping.csv`` and
``u_id_mapping.csv`` (external ids, tab-separated as MMRec ships them) and ``item_meta.jsonl``
(title, brand, categories, image URLs, raw modality content). A dataset written and read back is
unchanged.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ...utils import atomic_path, save_npy
from ..dataset import Catalog, DataError, MMDataset, Modality, check_feature_rows, load_npy
from ..text import check_string_list, check_text
from .base import Reader, finalize

INTER_COLUMNS = ("userID", "itemID", "rating", "timestamp", "x_label")


class MMRecReader(Reader):
    """Read an MMRec dataset folder.

    Args:
        inter_file: the interaction file name; default ``<dataset name>.inter``.
        modalities: modality names to read (``<m>_feat.npy``); ``None`` reads every
            ``*_feat.npy`` in the folder.
        split_seed: unused when the file carries ``x_label`` (it always does in this format).
    """

    def __init__(
        self,
        inter_file: str | None = None,
        modalities: list[str] | None = None,
        split_seed: int = 999,
    ) -> None:
        super().__init__(split_seed)
        self.inter_file = inter_file
        self.modality_names = None if modalities is None else list(modalities)

    def read(self, root: str | Path | None, name: str) -> MMDataset:
        if root is None:
            raise DataError("MMRecReader: dataset.root is not set; point it at the MMRec folder.")
        root = Path(root)
        inter_name = self.inter_file or f"{name}.inter"
        self.expected_files = (inter_name, "<modality>_feat.npy per modality")
        inter_path = self.require(root, inter_name, "tab-separated " + " ".join(INTER_COLUMNS))
        user, item, split, rating, timestamp = _read_inter(inter_path)

        item_ids = _read_id_map(root / "i_id_mapping.csv")
        user_ids = _read_id_map(root / "u_id_mapping.csv")
        n_items = len(item_ids) if item_ids is not None else int(item.max()) + 1
        n_users = len(user_ids) if user_ids is not None else int(user.max()) + 1
        if item.max() >= n_items or user.max() >= n_users:
            raise DataError(
                f"{inter_path}: itemID or userID beyond the id mappings ({n_items} items, "
                f"{n_users} users in i_id_mapping.csv / u_id_mapping.csv); regenerate them."
            )
        item_ids = item_ids or [str(i) for i in range(n_items)]
        user_ids = user_ids or [str(u) for u in range(n_users)]
        meta = _read_item_meta(root / "item_meta.jsonl", n_items)
        names = self.modality_names
        if names is None:  # the order item_meta.jsonl recorded, then any other feature file
            on_disk = sorted(p.name[: -len("_feat.npy")] for p in root.glob("*_feat.npy"))
            names = [m for m in meta["modalities"] if m in on_disk]
            names += [m for m in on_disk if m not in names]
        feats = {}
        for m in names:
            path = self.require(root, f"{m}_feat.npy", f"features of modality '{m}'")
            feats[m] = (path, load_npy(path, "features"))
        modalities = {}
        for m, (path, arr) in feats.items():
            fix = f"Re-export the features for every item of {inter_path.name} (row = itemID)."
            check_feature_rows(arr, path, n_items, fix)
            idx_path = root / f"{m}_items.npy"
            idx = _read_item_index(idx_path, n_items) if idx_path.is_file() else np.arange(n_items)
            bad = ~np.isfinite(arr[idx]).all(1)
            if bad.any():
                rows = idx[bad]
                raise DataError(
                    f"{path}: NaN or inf features in {len(rows)} rows (first: row {int(rows[0])}, item "
                    f"'{item_ids[rows[0]]}'). Re-encode those items, or leave them out of {idx_path.name}."
                )
            m_meta = meta["modalities"].get(m, {})
            modalities[m] = Modality(
                m,
                m_meta.get("kind", "feature"),
                idx,
                raw=m_meta.get("raw"),
                features=arr[idx],
            )
        for m, m_meta in meta["modalities"].items():  # raw-only modalities (not encoded yet)
            if m not in modalities and (self.modality_names is None or m in self.modality_names):
                modalities[m] = Modality(m, m_meta["kind"], m_meta["index"], raw=m_meta["raw"])
        catalog = Catalog(
            item_ids,
            meta["title"],
            meta["brand"],
            meta["categories"],
            meta["image_urls"],
            modalities=modalities,
        )
        return finalize(
            name,
            user_ids,
            user,
            item,
            catalog,
            split=split,
            rating=rating,
            timestamp=timestamp,
            source=str(inter_path),
        )


def write_mmrec(dataset: MMDataset, root: str | Path, name: str | None = None) -> Path:
    """Export ``dataset`` to an MMRec folder (see the module docstring); returns the folder.

    Modalities without features are written to ``item_meta.jsonl`` only (MMRec cannot use them).
    Every file is written atomically.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = name or dataset.name
    inter = dataset.interactions
    rating = inter.rating if inter.rating is not None else np.ones(len(inter), dtype=np.float32)
    ts = inter.timestamp if inter.timestamp is not None else np.zeros(len(inter), dtype=np.int64)
    with atomic_path(root / f"{name}.inter") as tmp:
        with open(tmp, "w", newline="") as f:
            f.write("\t".join(INTER_COLUMNS) + "\n")
            rows = zip(inter.user, inter.item, rating, ts, inter.split, strict=True)
            f.writelines(f"{u}\t{i}\t{r:g}\t{t}\t{s}\n" for u, i, r, t, s in rows)
    _write_id_map(root / "i_id_mapping.csv", "asin", "itemID", dataset.catalog.item_ids)
    _write_id_map(root / "u_id_mapping.csv", "user_id", "userID", dataset.user_ids)
    cat = dataset.catalog
    meta_mods = {}
    for m, mod in cat.modalities.items():
        if mod.features is not None:
            save_npy(root / f"{m}_feat.npy", mod.dense_features(cat.n_items, fill="mean"))
            save_npy(root / f"{m}_items.npy", mod.item_index)
        meta_mods[m] = mod
    with atomic_path(root / "item_meta.jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            raw_of = {
                m: dict(zip(mod.item_index.tolist(), mod.raw, strict=True))
                for m, mod in meta_mods.items()
                if mod.raw is not None
            }
            kinds = {m: mod.kind for m, mod in meta_mods.items()}
            f.write(json.dumps({"modality_kinds": kinds}) + "\n")
            for i in range(cat.n_items):
                row = cat.item_row(i)
                row["image_urls"] = cat.image_urls[i]
                row["raw"] = {m: r[i] for m, r in raw_of.items() if i in r}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return root


def _read_inter(path: Path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        has_rows = any(line.strip() for line in f)
    if header == [""]:
        raise DataError(
            f"{path}: the file is empty. The MMRec .inter file is tab-separated with header "
            f"{' '.join(INTER_COLUMNS)} and one interaction per line; export it again."
        )
    missing = [c for c in ("userID", "itemID", "x_label") if c not in header]
    if missing:
        raise DataError(
            f"{path}: header {header} lacks {missing}. The MMRec .inter file is tab-separated with "
            f"header {' '.join(INTER_COLUMNS)} (rating and timestamp optional)."
        )
    if not has_rows:
        raise DataError(f"{path}: a header and no interaction; export the interactions again.")
    try:
        table = np.loadtxt(path, delimiter="\t", skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as e:
        raise DataError(f"{path}: unreadable row ({e}); every field must be numeric.") from e
    col = {c: table[:, header.index(c)] for c in header if c in INTER_COLUMNS}
    user, item, split = (col[c].astype(np.int64) for c in ("userID", "itemID", "x_label"))
    bad = ~np.isin(split, (0, 1, 2))
    if bad.any():
        raise DataError(
            f"{path}: x_label must be 0 (train), 1 (valid) or 2 (test); row {int(np.argmax(bad)) + 2} "
            f"has {int(split[bad][0])}."
        )
    if (user < 0).any() or (item < 0).any():
        raise DataError(f"{path}: userID and itemID must be non-negative integers.")
    rating = col["rating"].astype(np.float32) if "rating" in col else None
    timestamp = col["timestamp"].astype(np.int64) if "timestamp" in col else None
    return user, item, split, rating, timestamp


def _read_id_map(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or len(rows[0]) != 2:
        raise DataError(f"{path}: expected two tab-separated columns (external id, index).")
    out = {}
    for ext, idx in rows[1:]:
        out[int(idx)] = ext
    return [out[i] for i in range(len(out))] if out else None


def _write_id_map(path: Path, ext_col: str, idx_col: str, ids: list[str]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow([ext_col, idx_col])
            w.writerows((x, i) for i, x in enumerate(ids))


def _read_item_meta(path: Path, n_items: int) -> dict:
    meta = {
        "title": [None] * n_items,
        "brand": [None] * n_items,
        "categories": [[] for _ in range(n_items)],
        "image_urls": [[] for _ in range(n_items)],
        "modalities": {},
    }
    if not path.is_file():
        return meta
    raw: dict[str, dict[int, str]] = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        kinds = _meta_line(path, 1, f.readline()).get("modality_kinds", {})
        if not isinstance(kinds, dict) or not all(isinstance(k, str) for k in kinds.values()):
            raise DataError(
                f"{path}, line 1: modality_kinds must map modality names to kinds; write the file "
                "again with write_mmrec."
            )
        for lineno, line in enumerate(f, 2):
            if not line.strip():
                continue
            row = _meta_line(path, lineno, line)
            i = row.get("item")
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n_items:
                raise DataError(
                    f"{path}, line {lineno}: 'item' is {i!r}; it must be an itemID in 0..{n_items - 1}."
                )
            where = f"{path}, line {lineno}, item {i}"
            meta["title"][i] = check_text(row.get("title"), where, "title")
            meta["brand"][i] = check_text(row.get("brand"), where, "brand")
            for name in ("categories", "image_urls"):
                fix = "a list of strings. Fix that line or write the file again."
                meta[name][i] = check_string_list(row.get(name) or [], where, name, fix)
            raw_row = row.get("raw") or {}
            if not isinstance(raw_row, dict):
                raise DataError(
                    f"{where}: field 'raw' is {type(raw_row).__name__}; it must map modality names to "
                    "content."
                )
            for m, v in raw_row.items():
                raw.setdefault(m, {})[i] = check_text(v, where, f"raw.{m}")
    for m, kind in kinds.items():
        entries = raw.get(m, {})
        index = np.array(sorted(entries), dtype=np.int64)
        meta["modalities"][m] = {
            "kind": kind,
            "index": index,
            "raw": [entries[i] for i in index.tolist()] if entries else None,
        }
    return meta


def _meta_line(path: Path, lineno: int, line: str) -> dict:
    """One line of ``item_meta.jsonl`` (read with ``surrogateescape``) as a JSON object."""
    undecodable = next((c for c in line if "\udc80" <= c <= "\udcff"), None)
    if undecodable is not None:
        raise DataError(
            f"{path}, line {lineno}: not UTF-8 (byte 0x{ord(undecodable) - 0xDC00:02x}); save the file "
            "as UTF-8."
        )
    try:
        row = json.loads(line)
    except ValueError as e:
        raise DataError(
            f"{path}, line {lineno}: not a JSON object ({e}); fix the line or write the file again."
        ) from e
    if not isinstance(row, dict):
        raise DataError(f"{path}, line {lineno}: a JSON {type(row).__name__}, not an object.")
    return row


def _read_item_index(path: Path, n_items: int) -> np.ndarray:
    """``<modality>_items.npy``: sorted, distinct itemIDs in ``0..n_items-1``."""
    idx = load_npy(path, "item indices")
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(
            f"{path}: an array of shape {idx.shape} and dtype {idx.dtype}; it must be a 1-D integer "
            "array of the itemIDs that have the modality. Export it again."
        )
    if len(idx) and (idx.min() < 0 or idx.max() >= n_items or (np.diff(idx) <= 0).any()):
        raise DataError(f"{path}: itemIDs must be sorted, distinct and in 0..{n_items - 1}; export it again.")
    return idx.astype(np.int64)

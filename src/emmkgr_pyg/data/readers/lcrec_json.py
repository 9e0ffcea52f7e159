"""The ``<Name>.inter.json`` / ``<Name>.item.json`` format (LC-Rec, APAO and others).

``<Name>.inter.json`` maps each user to the items they interacted with, in interaction order;
``<Name>.item.json`` maps each item to ``{title, description, brand, categories}`` (categories as a
comma-separated path). No timestamps: the split follows the MMRec protocol. Modalities: ``title``,
``description`` and ``attributes`` (brand + category path), each text, each only where present.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..dataset import Catalog, DataError, MMDataset, Modality
from ..text import attributes_text, check_categories, check_text, clean_text, split_category_path
from .base import Reader, finalize


class LcRecJsonReader(Reader):
    """Read ``<stem>.inter.json`` and ``<stem>.item.json`` from a folder.

    Args:
        stem: the file stem (``Office`` for ``Office.inter.json``).
        split_seed: the seed of the MMRec split.
    """

    def __init__(self, stem: str, split_seed: int = 999) -> None:
        super().__init__(split_seed)
        self.stem = stem
        self.expected_files = (f"{stem}.inter.json", f"{stem}.item.json")

    def read(self, root: str | Path | None, name: str) -> MMDataset:
        if root is None:
            raise DataError("LcRecJsonReader: dataset.root is not set; point it at the folder.")
        root = Path(root)
        inter_path = self.require(root, f"{self.stem}.inter.json", "{user: [item, ...]}")
        item_path = self.require(root, f"{self.stem}.item.json", "{item: {title, description, ...}}")
        inter = _load_json(inter_path, dict)
        items = _load_json(item_path, dict)

        item_ids = list(items.keys())
        item_index = {k: i for i, k in enumerate(item_ids)}
        user_ids = list(inter.keys())
        users, its, unknown = [], [], []
        for u, seq in enumerate(inter.values()):
            if not isinstance(seq, list):
                raise DataError(
                    f"{inter_path}: user '{user_ids[u]}' maps to {type(seq).__name__}; expected a "
                    "list of item ids."
                )
            for x in seq:
                j = item_index.get(str(x))
                if j is None:
                    unknown.append(str(x))
                    continue
                users.append(u)
                its.append(j)
        if unknown:
            raise DataError(
                f"{inter_path}: {len(unknown)} interactions name items missing from {item_path.name} "
                f"(e.g. '{unknown[0]}'). Add them to the item file or remove those interactions."
            )

        title, brand, cats, texts = [], [], [], {"title": [], "description": [], "attributes": []}
        for k in item_ids:
            where = f"{item_path}, item '{k}'"
            meta = items[k] if items[k] is not None else {}
            if not isinstance(meta, dict):
                raise DataError(
                    f"{where}: maps to {type(meta).__name__}; expected an object "
                    "{title, description, brand, categories} (or null)."
                )
            t = clean_text(check_text(meta.get("title"), where, "title"))
            d = clean_text(check_text(meta.get("description"), where, "description", paragraphs=True))
            b = clean_text(check_text(meta.get("brand"), where, "brand"))
            c = split_category_path(check_categories(meta.get("categories"), where))
            title.append(t)
            brand.append(b)
            cats.append(c)
            texts["title"].append(t)
            texts["description"].append(d)
            texts["attributes"].append(attributes_text(b, c))

        modalities = {m: text_modality(m, vals) for m, vals in texts.items()}
        catalog = Catalog(item_ids, title, brand, cats, modalities=modalities)
        return finalize(
            name,
            user_ids,
            np.asarray(users),
            np.asarray(its),
            catalog,
            split_seed=self.split_seed,
            source=str(inter_path),
        )


def text_modality(name: str, values: list[str | None]) -> Modality:
    """A text modality from one value per item; ``None`` values are missing."""
    idx = np.array([i for i, v in enumerate(values) if v], dtype=np.int64)
    return Modality(name, "text", idx, raw=[values[i] for i in idx])


def _load_json(path: Path, kind: type):
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}).") from e
    if not isinstance(obj, kind):
        raise DataError(f"{path}: expected a JSON {kind.__name__} at the top level.")
    return obj

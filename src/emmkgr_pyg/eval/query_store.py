"""Query sets on disk: JSONL files (:func:`save_queries`, :func:`load_queries`), a query set a
person wrote (:func:`read_query_file`: text and target items or a category) and the cache
:func:`query_sets`, which reuses the saved sets of a folder only while they were built with the same
settings from the same catalogue text (ids, titles, brands, category paths and descriptions: every
field :func:`~.search_queries.build_query_sets` reads; for the leak-free protocol also the indexed
text and the unindexed source text of :class:`~.leakfree_queries.LeakFreeInputs`)."""

from __future__ import annotations

import difflib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..data.dataset import Catalog, MMDataset
from ..utils import atomic_path, stable_hash, write_json
from .leakfree_queries import LeakFreeInputs, build_leakfree_sets
from .search_queries import PROTOCOLS, QUERY_SETS, QuerySetConfig, SearchQuery, build_query_sets

log = logging.getLogger(__name__)

#: the manifest of a folder's saved query sets (their key, settings and counts)
MANIFEST = "search_queries.json"


def query_file(folder: str | Path, query_set: str) -> Path:
    """Where :func:`query_sets` keeps one query set: ``search_queries_<set>.jsonl``."""
    return Path(folder) / f"search_queries_{query_set}.jsonl"


def descriptions(dataset: MMDataset, modality: str | None = "description") -> list[str | None]:
    """One description per item: the raw text of ``modality`` (``None`` where an item has none, or
    for every item when the dataset has no such text modality)."""
    out: list[str | None] = [None] * dataset.n_items
    mod = dataset.modalities.get(modality) if modality else None
    if mod is not None and mod.raw is not None:
        for i, text in zip(mod.item_index, mod.raw, strict=True):
            out[i] = text
    return out


def catalogue_key(
    dataset: MMDataset,
    cfg: QuerySetConfig,
    descs: Sequence[str | None],
    description_modality: str | None,
    leakfree: LeakFreeInputs | None = None,
) -> str:
    """A hash of everything the query sets are built from: the settings and the catalogue's text
    (and, leak-free, the indexed and the source text)."""
    cat = dataset.catalog
    extra = [] if leakfree is None else [leakfree.indexed, leakfree.fine_source, leakfree.categories_indexed]
    return stable_hash(
        *extra,
        vars(cfg),
        dataset.name,
        cat.item_ids,
        cat.title,
        cat.brand,
        cat.categories,
        list(descs),
        description_modality,
    )


def query_sets(
    dataset: MMDataset,
    cfg: QuerySetConfig,
    folder: str | Path,
    description_modality: str | None = "description",
    rebuild: bool = False,
    leakfree: LeakFreeInputs | None = None,
) -> dict[str, list[SearchQuery]]:
    """The query sets of a dataset: read from ``folder`` when saved with the same settings and
    catalogue text (:func:`catalogue_key`), else built and saved there (one JSONL file per set and
    the manifest :data:`MANIFEST`). ``cfg.protocol`` ``leakfree`` needs ``leakfree`` (what the
    methods under test index and the unindexed source text); ``lookup`` ignores it."""
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"queries.protocol={cfg.protocol}: choose one of {PROTOCOLS}.")
    if cfg.protocol == "leakfree" and leakfree is None:
        raise ValueError("query_sets: the leakfree protocol needs LeakFreeInputs (what is indexed).")
    leakfree = leakfree if cfg.protocol == "leakfree" else None
    folder = Path(folder)
    descs = descriptions(dataset, description_modality)
    key = catalogue_key(dataset, cfg, descs, description_modality, leakfree)
    manifest = folder / MANIFEST
    paths = {s: query_file(folder, s) for s in QUERY_SETS}
    if not rebuild and manifest.is_file() and all(p.is_file() for p in paths.values()):
        if json.loads(manifest.read_text()).get("key") == key:
            log.info("reusing the query sets in %s", folder)
            return {s: load_queries(p) for s, p in paths.items()}
    t0 = time.perf_counter()
    if leakfree is None:
        sets = build_query_sets(dataset.catalog, descs, cfg)
    else:
        sets = build_leakfree_sets(
            dataset.catalog, leakfree.indexed, leakfree.fine_source, cfg, leakfree.categories_indexed
        )
    for s, p in paths.items():
        save_queries(p, sets[s])
    write_json(
        manifest,
        {
            "key": key,
            "dataset": dataset.name,
            "settings": vars(cfg),
            "description_modality": description_modality,
            "fine_source": None
            if leakfree is None or leakfree.fine_source is None
            else leakfree.fine_source[0],
            "counts": {s: len(q) for s, q in sets.items()},
            "build_seconds": round(time.perf_counter() - t0, 3),
        },
    )
    log.info("built %s queries; saved in %s", {s: len(q) for s, q in sets.items()}, folder)
    return sets


def save_queries(path: str | Path, queries: Sequence[SearchQuery]) -> Path:
    """Write queries as JSONL (one JSON object per line), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(asdict(q)) + "\n" for q in queries))
    return path


def load_queries(path: str | Path) -> list[SearchQuery]:
    """Read queries written by :func:`save_queries`."""
    path = Path(path)
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(SearchQuery(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a query line ({e}); rebuild the queries.") from e
    return out


#: fields of a line of a user's query file (:func:`read_query_file`)
QUERY_FILE_FIELDS = ("query", "targets", "category", "set", "id")


def read_query_file(
    path: str | Path, catalog: Catalog, default_set: str = "user"
) -> dict[str, list[SearchQuery]]:
    """A query set a person wrote, as JSONL: one object per line with ``query`` (the text) and
    either ``targets`` (the relevant items' ids) or ``category`` (a category name: the targets are
    the items whose category path holds it, as in the coarse sets), and optionally ``set`` (the
    set's name, default ``default_set``) and ``id``.

    Raises:
        ValueError: naming the file, the line, the field and the fix, on a line that is no JSON
            object, lacks ``query`` or its targets, names an unknown field, an item id the
            catalogue lacks or a category no item has.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such query file; query_file must name a JSONL file.")
    known = set(catalog.item_ids)
    by_category: dict[str, list[str]] = {}
    for item, cats in zip(catalog.item_ids, catalog.categories, strict=True):
        for c in dict.fromkeys(cats):
            by_category.setdefault(c.lower(), []).append(item)
    sets: dict[str, list[SearchQuery]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not JSON ({e.msg}); write one JSON object per line.") from e
        if not isinstance(row, dict):
            raise ValueError(f'{where}: a {type(row).__name__}, not an object; write {{"query": ...}}.')
        extra = sorted(set(row) - set(QUERY_FILE_FIELDS))
        if extra:
            raise ValueError(f"{where}: unknown field(s) {extra}; a line may hold {list(QUERY_FILE_FIELDS)}.")
        text = row.get("query")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: field 'query' is missing or empty; give the query text.")
        if ("targets" in row) == ("category" in row):
            raise ValueError(f"{where}: give exactly one of 'targets' (item ids) and 'category'.")
        if "targets" in row:
            targets = row["targets"]
            if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
                raise ValueError(f"{where}: field 'targets' must be a non-empty list of item id strings.")
            unknown = [t for t in targets if t not in known]
            if unknown:
                raise ValueError(
                    f"{where}: field 'targets' names {len(unknown)} item id(s) the catalogue lacks "
                    f"(e.g. {unknown[0]!r}); use the ids of the dataset's items."
                )
            kind, source = "item" if len(targets) == 1 else "items", "file:targets"
        else:
            cat = row["category"]
            targets = by_category.get(cat.lower(), []) if isinstance(cat, str) else []
            if not targets:
                near = difflib.get_close_matches(str(cat).lower(), list(by_category), n=1)
                hint = f" (closest: {near[0]!r})" if near else ""
                raise ValueError(
                    f"{where}: field 'category' {cat!r} is on no item's category path{hint}; "
                    "use a category name of the dataset."
                )
            kind, source = "category", "file:category"
        name = str(row.get("set", default_set))
        qid = str(row.get("id", f"{name}-{len(sets.get(name, []))}"))
        query = SearchQuery(qid, name, kind, text.strip(), list(dict.fromkeys(targets)), source)
        sets.setdefault(name, []).append(query)
    if not sets:
        raise ValueError(f"{path}: no queries; write one JSON object per line.")
    return sets

"""Which modalities a run uses, how each is encoded, and the feature cache.

The ``modality`` config group says it (``conf/modality/*.yaml``)::

    text_encoder:  {_target_: ...}   # encodes every text modality
    image_encoder: null              # encodes image-path modalities (a CNN), or null
    include: null                    # modality names to use; null = all the dataset has
    exclude: []                      # names to drop (the ablations)
    extra: {}                        # new modalities: name -> {source, kind, encoder}

A new modality is one ``extra`` entry. ``source`` is an ``.npy`` file (one row per item), a JSON
file mapping item ids to texts, the name of a modality the dataset already has (re-encoded,
e.g. with another encoder), or a list of the dataset's text modalities joined per item into one
text (in the listed order, with ``sep``, default a space; an item has it when it has any of them;
MMRec's text input is ``source: [title, attributes, description]``); ``encoder`` defaults to the
encoder of the source's kind.

Features are cached per (dataset, modality, encoder) under ``cache_dir``: the ``.npy`` is written
atomically and its manifest (with a hash of the inputs and of the encoder, and the SHA-256 of the
``.npy``) after it, so an interrupted run leaves nothing a later run would trust, and a second run
reuses the features. An entry that is unreadable, empty, truncated or overwritten is a miss.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import load_checked_npy, save_npy, stable_hash, write_json
from .dataset import DataError, MMDataset, Modality, check_feature_rows, load_npy
from .encoders import Encoder, PrecomputedEncoder

log = logging.getLogger(__name__)


@dataclass
class ModalitySpec:
    """One modality of a run: where its content comes from and how it is encoded."""

    name: str
    modality: Modality
    encoder: Encoder


class FeatureCache:
    """Encoded features on disk, keyed by dataset, modality, encoder identity and input hash."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def paths(self, dataset: str, modality: str, key: str) -> tuple[Path, Path]:
        folder = self.root / _slug(dataset) / _slug(modality)
        return folder / f"{key[:24]}.npy", folder / f"{key[:24]}.json"

    def lookup(self, dataset: str, modality: str, key: str, n_rows: int) -> np.ndarray | None:
        npy, manifest = self.paths(dataset, modality, key)
        if not (npy.is_file() and manifest.is_file()):
            return None
        try:
            info = json.loads(manifest.read_text())
            if not isinstance(info, dict):
                raise ValueError("the manifest is not a JSON object")
        except (OSError, ValueError) as e:
            log.warning("feature cache manifest %s unreadable (%s); re-encoding", manifest, e)
            return None
        arr = load_checked_npy(npy, info.get("sha256"))
        if arr is None:
            return None
        if info.get("key") != key or list(arr.shape) != info.get("shape") or len(arr) != n_rows:
            log.warning("feature cache entry %s does not match its manifest; re-encoding", npy)
            return None
        return arr

    def store(self, dataset: str, modality: str, key: str, arr: np.ndarray, info: dict) -> None:
        npy, manifest = self.paths(dataset, modality, key)
        digest = save_npy(npy, arr)
        write_json(manifest, {**info, "key": key, "shape": list(arr.shape), "sha256": digest})


def resolve_modalities(dataset: MMDataset, cfg: Mapping[str, Any], instantiate=None) -> list[ModalitySpec]:
    """The modalities of a run, in a deterministic order (the dataset's, then ``extra``).

    Args:
        dataset: the dataset (raw content and/or features per modality).
        cfg: the ``modality`` config (see the module docstring).
        instantiate: builds an encoder from a config (``hydra.utils.instantiate`` by default).
    """
    if instantiate is None:
        from hydra.utils import instantiate
    encoders = {
        "text": _build(cfg.get("text_encoder"), instantiate),
        "image": _build(cfg.get("image_encoder"), instantiate),
        "feature": PrecomputedEncoder(),
    }
    available = dict(dataset.modalities)
    for name, entry in (cfg.get("extra") or {}).items():
        available[name] = _extra_modality(dataset, name, entry)
    include = cfg.get("include")
    exclude = set(cfg.get("exclude") or [])
    unknown = [m for m in list(include or []) + list(exclude) if m not in available]
    if unknown:
        raise DataError(
            f"modality config names {unknown}, which dataset '{dataset.name}' does not have "
            f"(it has {sorted(available)}). Fix modality.include / modality.exclude, or add the "
            "modality under modality.extra."
        )
    names = [m for m in (include if include is not None else available) if m not in exclude]
    specs = []
    for name in names:
        mod = available[name]
        entry = (cfg.get("extra") or {}).get(name) or {}
        enc = _build(entry.get("encoder"), instantiate) if entry.get("encoder") else None
        if enc is None:
            enc = encoders["feature"] if mod.features is not None else encoders[mod.kind]
        if enc is None:
            raise DataError(
                f"modality '{name}' holds {mod.kind} content and no {mod.kind} encoder is "
                f"configured. Set modality.{mod.kind}_encoder (e.g. a CNN for images) or give "
                "precomputed features."
            )
        if mod.kind not in enc.kinds and not (mod.features is not None):
            raise DataError(
                f"modality '{name}' is {mod.kind} but its encoder {type(enc).__name__} takes "
                f"{enc.kinds}; choose an encoder for {mod.kind}."
            )
        specs.append(ModalitySpec(name, mod, enc))
    if not specs and available:
        raise DataError(
            f"no modality left for dataset '{dataset.name}' after include/exclude; keep at least one "
            f"of {sorted(available)}."
        )
    return specs


def encode_dataset(
    dataset: MMDataset,
    specs: list[ModalitySpec],
    cache: FeatureCache | None = None,
    progress: bool = True,
    dtype: type = np.float32,
    chunk_rows: int | None = None,
) -> tuple[MMDataset, dict[str, dict]]:
    """A copy of ``dataset`` whose modalities are exactly ``specs``, each with features.

    Args:
        dtype: ``np.float32`` (default) or ``np.float16``, which halves the features' memory (a
            million-item catalogue); float16 features are cached under their own key.
        chunk_rows: encode this many rows at a time straight into the ``dtype`` array, so that the
            encoder's float32 output of a whole modality never exists at once (default: all rows).

    Returns the dataset and, per modality, the encoding record (seconds, cache hit, encoder).
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float16):
        raise ValueError(f"encode_dataset: dtype must be float32 or float16, not {dtype}.")
    records: dict[str, dict] = {}
    modalities = {}
    for spec in specs:
        mod, enc = spec.modality, spec.encoder
        t0 = time.perf_counter()
        if isinstance(enc, PrecomputedEncoder):
            feats = mod.features if enc.path is None else enc.load_rows(mod.item_index, dataset.n_items)
            if feats is None:
                raise DataError(f"modality '{spec.name}' has no features and no file to load.")
            hit = None
        else:
            if mod.raw is None:
                raise DataError(f"modality '{spec.name}' has no raw content to encode.")
            key = feats = None
            if cache is not None:  # hashing every text costs memory: only when there is a cache
                key_parts = [] if dtype == np.float32 else [dtype.name]  # float32 keys as before
                key = stable_hash(enc.identity(), _content_identity(mod), *key_parts)
                feats = cache.lookup(dataset.name, spec.name, key, mod.n_items_with)
            hit = feats is not None
            if feats is None:
                feats = _encode(enc, mod.raw, dtype, chunk_rows, progress, f"encode {spec.name}")
                if cache is not None:
                    cache.store(
                        dataset.name,
                        spec.name,
                        key,
                        feats,
                        {
                            "dataset": dataset.name,
                            "modality": spec.name,
                            "encoder": enc.identity(),
                            "n_items": mod.n_items_with,
                            "seconds": round(time.perf_counter() - t0, 3),
                        },
                    )
        modalities[spec.name] = mod.with_features(np.asarray(feats, dtype=dtype))
        records[spec.name] = {
            "encoder": enc.identity(),
            "seconds": round(time.perf_counter() - t0, 3),
            "cache_hit": hit,
            "n_items_with": mod.n_items_with,
            "dim": int(modalities[spec.name].features.shape[1]),
        }
    catalog = replace(dataset.catalog, modalities=modalities)
    out = replace(dataset, catalog=catalog)
    out.validate(f"dataset '{dataset.name}' after encoding")
    return out, records


def _encode(
    enc: Encoder, raw: Sequence, dtype: np.dtype, chunk_rows: int | None, progress: bool, desc: str
) -> np.ndarray:
    """``enc.encode(raw)`` as ``dtype``; with ``chunk_rows``, in chunks written into one array."""
    if not chunk_rows or len(raw) <= chunk_rows:
        return np.asarray(enc.encode(raw, progress=progress, desc=desc), dtype=dtype)
    out = None
    for start in range(0, len(raw), chunk_rows):
        block = enc.encode(raw[start : start + chunk_rows], progress=progress, desc=desc)
        if out is None:
            out = np.empty((len(raw), block.shape[1]), dtype=dtype)
        out[start : start + len(block)] = block
    return out


def _build(cfg: Any, instantiate) -> Encoder | None:
    if cfg is None:
        return None
    if isinstance(cfg, Encoder):
        return cfg
    return instantiate(cfg)


def _content_identity(mod: Modality) -> list:
    if mod.kind == "image":  # files: hash paths with their sizes and modification times
        ident = []
        for p in mod.raw:
            st = Path(p).stat() if Path(p).is_file() else None
            ident.append(f"{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}")
        return [mod.item_index, ident]
    return [mod.item_index, list(mod.raw)]


def _extra_modality(dataset: MMDataset, name: str, entry: Mapping[str, Any]) -> Modality:
    source = entry.get("source")
    if source is None:
        raise DataError(f"modality.extra.{name}: give a source (.npy, .json or a modality name).")
    if isinstance(source, Sequence) and not isinstance(source, str):
        return _joined_text_modality(dataset, name, list(source), str(entry.get("sep", " ")))
    source = str(source)
    if source in dataset.modalities:
        base = dataset.modalities[source]
        kind = entry.get("kind") or base.kind
        feats = None if base.raw else base.features
        return Modality(name, kind, base.item_index, raw=base.raw, features=feats)
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(
            f"modality.extra.{name}.source = {source}: neither a file nor a modality of dataset "
            f"'{dataset.name}' ({sorted(dataset.modalities)})."
        )
    if path.suffix == ".npy":
        arr = load_npy(path, f"features of modality '{name}'")
        fix = (
            f"Re-export it for every item of '{dataset.name}'; mark items without the modality with "
            "a row of NaN."
        )
        check_feature_rows(arr, path, dataset.n_items, fix)
        present = ~np.isnan(arr).all(1)
        idx = np.where(present)[0]
        bad = ~np.isfinite(arr[idx]).all(1)
        if bad.any():
            raise DataError(
                f"{path}: NaN or inf in {int(bad.sum())} rows that are not all NaN (first: row "
                f"{int(idx[bad][0])}); a missing item is a row of NaN only. {fix}"
            )
        return Modality(name, entry.get("kind") or "feature", idx, features=arr[idx])
    if path.suffix == ".json":
        texts = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(texts, dict):
            raise DataError(f"{path}: expected a JSON object mapping item ids to texts.")
        index = {x: i for i, x in enumerate(dataset.catalog.item_ids)}
        unknown = [k for k in texts if k not in index]
        if unknown:
            raise DataError(
                f"{path}: {len(unknown)} keys are not item ids of '{dataset.name}' (e.g. "
                f"'{unknown[0]}'). Key the file by the catalogue's item ids."
            )
        pairs = sorted((index[k], str(v)) for k, v in texts.items() if v)
        return Modality(name, entry.get("kind") or "text", [i for i, _ in pairs], raw=[v for _, v in pairs])
    raise DataError(f"{path}: modality sources are .npy (features) or .json (texts).")


def _joined_text_modality(dataset: MMDataset, name: str, sources: list, sep: str) -> Modality:
    """One text per item: the item's texts of the ``sources`` modalities, in order, joined."""
    bad = [m for m in sources if m not in dataset.modalities or dataset.modalities[m].raw is None]
    if not sources or bad:
        raise DataError(
            f"modality.extra.{name}.source = {sources}: {bad or 'an empty list'} are not text "
            f"modalities of dataset '{dataset.name}' with raw text ({sorted(dataset.modalities)})."
        )
    parts: dict[int, list[str]] = {}
    for m in sources:
        mod = dataset.modalities[m]
        for i, text in zip(mod.item_index.tolist(), mod.raw, strict=True):
            if text:
                parts.setdefault(i, []).append(str(text))
    index = sorted(parts)
    return Modality(name, "text", index, raw=[sep.join(parts[i]) for i in index])


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)

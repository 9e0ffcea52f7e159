"""Small shared helpers: atomic writes, content hashes, checksummed cache files, seeding, JSON."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting out of its range or a combination that cannot work; the message names the
    setting (as a config key) and the fix."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    An interrupted or failing write leaves ``path`` as it was (a half-written file never appears
    under the final name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` as a whole.

    Writers may run concurrently: each fills its own temporary folder, and the swap is serialised by
    a lock file beside ``path`` (``.<name>.lock``), so the last writer wins and none fails. A
    ``.<name>.old-*`` folder left by a writer killed mid-swap is removed by the next one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        with FileLock(path.with_name(f".{path.name}.lock")):
            for stale in path.parent.glob(f".{path.name}.old-*"):
                shutil.rmtree(stale, ignore_errors=True)
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
                os.replace(path, old)
            os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> str:
    """Write ``array`` as ``.npy`` atomically; returns the SHA-256 of the file (:func:`file_sha256`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
        digest = file_sha256(tmp)
    return digest


def file_sha256(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checked_npy(path: str | os.PathLike, sha256: str | None) -> np.ndarray | None:
    """The array in cache file ``path`` if its bytes still have checksum ``sha256``; ``None``
    (with a warning) when the file is unreadable, truncated, empty or was overwritten."""
    try:
        if sha256 is None or file_sha256(path) != sha256:
            raise ValueError("its checksum does not match the manifest")
        return np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable cache entry is a miss
        log.warning("cache entry %s unreadable (%s: %s); rebuilding it", path, type(e).__name__, e)
        return None


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def stable_hash(*parts: Any) -> str:
    """A hex SHA-256 of ``parts`` (arrays by dtype, shape and bytes; the rest through JSON)."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"nd:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        elif isinstance(p, (list, tuple)) and p and all(isinstance(x, str) for x in p):
            h.update(f"strs:{len(p)}".encode())
            for x in p:
                h.update(x.encode("utf-8", "surrogatepass"))
                h.update(b"\0")
        else:
            h.update(json.dumps(p, sort_keys=True, default=_json_default).encode())
        h.update(b"|")
    return h.hexdigest()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU) so that a run is repeatable."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; floats are shown with 4 decimals."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in cells)])


def reset_peak_rss() -> None:
    """Reset this process's peak resident memory (Linux ``clear_refs``; elsewhere a no-op)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process since start or :func:`reset_peak_rss`, in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def resolve_device(device: str = "auto") -> torch.device:
    """The device a run trains on: ``"auto"`` is this process's GPU when CUDA is available (its
    ``LOCAL_RANK`` under ``torchrun``), else the CPU; anything else is taken as a torch device."""
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device}: CUDA is not available here; use device=auto or device=cpu.")
    return dev

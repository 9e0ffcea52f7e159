"""Shared fixtures. Real data is read from ../shared/data (beside the repository), never copied."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Small tensors gain nothing from a second thread, and an oversubscribed machine makes OpenMP
# threads spin: tests run single-threaded (a CLI test may ask for more).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMMKGR_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


@pytest.fixture
def shared():
    """``shared("amazon-office-2014")``: a path under ../shared/data; skips when it is absent."""
    return _shared


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


TINY_EMMKGR = [
    "dataset=synthetic_tiny",
    "modality=hashing",
    "train=quick",
    "train.epochs=3",
    "train.progress=false",
    "model=emmkgr",
]


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    """A 3-epoch E-MMKGR run on synthetic_tiny (hashing text, 32-d image vectors), trained once per
    session through the installed ``emmkgr-train``; do not write into it (copy it first)."""
    root = tmp_path_factory.getbasetemp() / "tiny_emmkgr"
    run = root / "run"
    if not (run / "embeddings.pt").is_file():
        root.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "emmkgr-train"
        args = [str(exe), *TINY_EMMKGR, "hydra.run.dir=run", f"cache_dir={root / 'cache'}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"training the tiny run failed:\n{proc.stdout}\n{proc.stderr}"
    return run


def full_propagation(encoder, contents: dict, top_n: int, item_owner: dict | None = None):
    """Dense reference of one new item attached to a trained E-MMKG (``InductivePropagator``):
    append it to the whole graph (zero id embedding, projected modality nodes, item-modal and top-n
    modal-modal edges, and with ``item_owner`` ({modality: item of each node}) one edge to each item
    owning one of those neighbours; every edge both ways) and run the encoder's L layers from
    scratch with a fresh ``LightGCNConv``. Returns the new item's H^MM ``[d]``."""
    import numpy as np

    from emmkgr_pyg.graph.emmkg import ITEM
    from emmkgr_pyg.graph.knn import normalize_rows
    from emmkgr_pyg.nn.conv import LightGCNConv

    view = encoder.view
    n = view.num_nodes
    with torch.no_grad():
        rows = [encoder.initial_embeddings(), torch.zeros(1, encoder.dim)]
        pairs, owners = [], set()
        node = n + 1
        for i, m in enumerate(encoder.modalities):
            if m not in contents:
                continue
            x = np.asarray(contents[m], dtype=np.float32).reshape(1, -1)
            rows.append(encoder.project(i, torch.from_numpy(x)))
            sims = normalize_rows(encoder.features(i).numpy()) @ normalize_rows(x)[0]
            nbr = np.argsort(-sims, kind="stable")[:top_n]
            pairs += [(n, node)] + [(node, int(j) + view.offsets[m]) for j in nbr]
            if item_owner is not None:
                owners |= {int(item_owner[m][j]) + view.offsets[ITEM] for j in nbr}
            node += 1
        pairs += [(n, o) for o in sorted(owners)]
        both = pairs + [(b, a) for a, b in pairs]
        edge_index = torch.cat([encoder.edge_index, torch.tensor(both, dtype=torch.long).t()], dim=1)
        x0 = torch.cat(rows)
        conv = LightGCNConv(add_self_loops=encoder.conv.add_self_loops)
        h, out = x0, x0.clone()
        for _ in range(encoder.num_layers):
            h = conv(h, edge_index)
            out = out + h
    return (out / (encoder.num_layers + 1))[n]


@pytest.fixture
def reference_propagation():
    """``reference_propagation(encoder, {modality: raw features}, top_n, item_owner=None)``: see
    :func:`full_propagation` (the nn and search suites both check against it)."""
    return full_propagation

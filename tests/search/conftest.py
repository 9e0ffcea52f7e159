"""A hand-built E-MMKG (exact checks of the propagation) and one tiny trained run per session."""

from __future__ import annotations

import numpy as np
import pytest

from emmkgr_pyg.data.dataset import Catalog, MMDataset, Modality
from emmkgr_pyg.data.readers.base import finalize

#: item indices that have each modality (item 2 lacks text, items 0 and 3 lack an image)
COVERAGE = {"text": [0, 1, 3, 4, 5, 6, 7, 8, 9], "image": [1, 2, 4, 5, 6, 7, 8, 9], "title": list(range(10))}
DIMS = {"text": 6, "image": 5, "title": 4}


def make_dataset(n_items: int = 10, seed: int = 0) -> MMDataset:
    """Feature modalities covering some items; random features (no ties); brands and paths."""
    rng = np.random.default_rng(seed)
    mods = {
        name: Modality(name, "feature", np.array(items), features=rng.normal(size=(len(items), DIMS[name])))
        for name, items in COVERAGE.items()
    }
    catalog = Catalog(
        [f"i{i}" for i in range(n_items)],
        [f"title {i}" for i in range(n_items)],
        ["Acme" if i % 2 else "Zenith" for i in range(n_items)],
        [["Office", "Pens" if i < 5 else "Paper"] for i in range(n_items)],
        modalities=mods,
    )
    n_users = 8
    user = np.repeat(np.arange(n_users), 4)
    item = np.concatenate([rng.choice(n_items, 4, replace=False) for _ in range(n_users)])
    return finalize("hand", [f"u{u}" for u in range(n_users)], user, item, catalog)


@pytest.fixture
def hand_dataset() -> MMDataset:
    return make_dataset()


@pytest.fixture(scope="session")
def tiny_run(tiny_run_dir):
    from emmkgr_pyg.runs import load_run

    return load_run(tiny_run_dir)


def full_propagation(encoder, contents: dict, top_n: int):
    """Reference for one new item: append it (zero id embedding, projected modality nodes, item-modal
    and top-n modal-modal edges both ways) to the whole graph and run the encoder's L layers from
    scratch with a fresh :class:`LightGCNConv`. Returns the new item's H^MM ``[d]``."""
    import torch

    from emmkgr_pyg.graph.knn import normalize_rows
    from emmkgr_pyg.nn.conv import LightGCNConv

    view = encoder.view
    n = view.num_nodes
    with torch.no_grad():
        rows = [encoder.initial_embeddings(), torch.zeros(1, encoder.dim)]
        edges = [encoder.edge_index]
        node = n + 1
        for i, m in enumerate(encoder.modalities):
            if m not in contents:
                continue
            x = np.asarray(contents[m], dtype=np.float32).reshape(1, -1)
            rows.append(encoder.project(i, torch.from_numpy(x)))
            sims = normalize_rows(encoder.features(i).numpy()) @ normalize_rows(x)[0]
            nbr = np.argsort(-sims, kind="stable")[:top_n] + view.offsets[m]
            pairs = [(n, node)] + [(node, int(j)) for j in nbr]
            both = [(a, b) for a, b in pairs] + [(b, a) for a, b in pairs]
            edges.append(torch.tensor(both, dtype=torch.long).t())
            node += 1
        x0 = torch.cat(rows)
        edge_index = torch.cat(edges, dim=1)
        conv = LightGCNConv(add_self_loops=encoder.conv.add_self_loops)
        h, out = x0, x0.clone()
        for _ in range(encoder.num_layers):
            h = conv(h, edge_index)
            out = out + h
    return (out / (encoder.num_layers + 1))[n]


@pytest.fixture
def reference_propagation():
    """``reference_propagation(encoder, {modality: raw features}, top_n)``: see
    :func:`full_propagation`."""
    return full_propagation

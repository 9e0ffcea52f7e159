import numpy as np
import pytest
import torch

from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.nn.encoder import EMMKGEncoder
from emmkgr_pyg.nn.inductive import InductivePropagator
from emmkgr_pyg.nn.kge import rotate_distance
from emmkgr_pyg.search import KGSearch, SearchError


@pytest.fixture
def trained(hand_dataset):
    kg = build_emmkg(hand_dataset, top_n=3, knn=KNNBuilder(symmetric=True, progress=False))
    torch.manual_seed(0)
    enc = EMMKGEncoder(kg, dim=8, num_layers=2)
    phases = torch.rand(len(enc.view.relations), 4) * 6.0 - 3.0
    with torch.no_grad():
        items = enc.propagate()[: hand_dataset.n_items]
    return enc, kg, phases, items


def _rel(enc, m):
    return enc.view.relations.index((m, f"{m}_of", "item"))


def test_projected_query_nodes_score_by_the_rotate_distance_of_m_of(trained):
    enc, _, phases, items = trained
    kg = KGSearch(enc, phases, items, node="projected")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)
    with torch.no_grad():
        zx = enc.project(enc.modalities.index("text"), torch.from_numpy(x))
        zy = enc.project(enc.modalities.index("image"), torch.from_numpy(y))
        dx = rotate_distance(zx[:, None], phases[_rel(enc, "text")], items[None])
        dy = rotate_distance(zy[:, None], phases[_rel(enc, "image")], items[None])
    np.testing.assert_allclose(kg.scores({"text": x}), -dx.numpy(), rtol=1e-5)
    np.testing.assert_allclose(kg.scores({"text": x, "image": y}), -(dx + dy).numpy() / 2, rtol=1e-5)
    np.testing.assert_allclose(kg.scores({"text": x, "image": y}, ["image"]), -dy.numpy(), rtol=1e-5)


def test_search_is_link_prediction_an_item_is_found_from_its_own_modality_node(trained, hand_dataset):
    enc, _, phases, _ = trained
    i = enc.modalities.index("text")
    feats = hand_dataset.modalities["text"].features.astype(np.float32)
    owners = hand_dataset.modalities["text"].item_index
    with torch.no_grad():
        z = enc.project(i, torch.from_numpy(feats))
    # tails placed exactly where the relation leads from each item's text node
    phase = phases[_rel(enc, "text")]
    re, im = z.chunk(2, -1)
    rotated = torch.cat([re * phase.cos() - im * phase.sin(), re * phase.sin() + im * phase.cos()], -1)
    items = torch.zeros(hand_dataset.n_items, 8)
    items[torch.from_numpy(owners)] = rotated
    got = KGSearch(enc, phases, items, node="projected").scores({"text": feats})
    np.testing.assert_array_equal(got.argmax(1), owners)
    np.testing.assert_allclose(got[np.arange(len(owners)), owners], 0.0, atol=1e-3)


def test_propagated_query_nodes_are_the_propagators_modality_nodes(trained):
    enc, graph, phases, items = trained
    prop = InductivePropagator(enc, graph, top_n=3)
    x = np.random.default_rng(1).normal(size=(2, 6)).astype(np.float32)
    contents = [{"text": x[0]}, {"text": x[1]}]
    node = prop.embed_modal(contents, "text")
    h, nodes = prop._propagate(contents)
    rows, ids = nodes["text"]
    np.testing.assert_allclose(node[rows].numpy(), h[ids].numpy())
    # the query's text node differs from its projection: it was propagated over its neighbours
    with torch.no_grad():
        z = enc.project(enc.modalities.index("text"), torch.from_numpy(x))
    assert not torch.allclose(node, z)
    kg = KGSearch(enc, phases, items, propagator=prop, node="propagated")
    with torch.no_grad():
        want = -rotate_distance(node[:, None], phases[_rel(enc, "text")], items[None])
    np.testing.assert_allclose(kg.scores({"text": x}), want.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="needs content in modality 'image'"):
        prop.embed_modal(contents, "image")


def test_kg_search_errors_name_the_fix(trained):
    enc, _, phases, items = trained
    with pytest.raises(SearchError, match="kg_node=nearest: choose one of"):
        KGSearch(enc, phases, items, node="nearest")
    with pytest.raises(SearchError, match="needs an InductivePropagator"):
        KGSearch(enc, phases, items)
    kg = KGSearch(enc, phases, items, node="projected")
    with pytest.raises(SearchError, match=r"\['audio'\] have no '<m>_of' relation"):
        kg.scores({"audio": np.zeros((1, 3), np.float32)})

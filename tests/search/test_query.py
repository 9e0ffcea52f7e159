import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.nn.encoder import EMMKGEncoder
from emmkgr_pyg.search.index import SearchError
from emmkgr_pyg.search.query import InductivePropagator, QueryEncoder


def _encoder(dataset, layers=2, self_loops=False, item_item=False, top_n=3, feature_dim=None):
    kg = build_emmkg(
        dataset, top_n=top_n, item_item=item_item, knn=KNNBuilder(symmetric=True, progress=False)
    )
    torch.manual_seed(0)
    enc = EMMKGEncoder(kg, dim=8, num_layers=layers, add_self_loops=self_loops, feature_dim=feature_dim)
    return enc, kg


def _contents(seed=1):
    rng = np.random.default_rng(seed)
    return [
        {"text": rng.normal(size=6), "image": rng.normal(size=5), "title": rng.normal(size=4)},
        {"title": rng.normal(size=4)},
        {"image": rng.normal(size=5), "text": rng.normal(size=6)},
    ]


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("self_loops", [False, True])
def test_new_items_get_their_exact_embedding_in_the_extended_graph(
    hand_dataset, reference_propagation, layers, self_loops
):
    enc, kg = _encoder(hand_dataset, layers, self_loops)
    prop = InductivePropagator(enc, kg, top_n=3)
    contents = _contents()
    got = prop.embed(contents)
    assert got.shape == (3, 8)
    for j, c in enumerate(contents):
        want = reference_propagation(enc, c, 3)
        torch.testing.assert_close(got[j], want, atol=1e-5, rtol=1e-4)


def test_deeper_encoders_are_close_but_approximate(hand_dataset, reference_propagation):
    enc, kg = _encoder(hand_dataset, layers=3)
    got = InductivePropagator(enc, kg, top_n=3).embed(_contents()[:1])[0]
    want = reference_propagation(enc, _contents()[0], 3)
    assert torch.nn.functional.cosine_similarity(got, want, dim=0) > 0.95


def test_batch_items_are_embedded_independently(hand_dataset):
    enc, kg = _encoder(hand_dataset)
    prop = InductivePropagator(enc, kg, top_n=3)
    contents = _contents()
    together = prop.embed(contents)
    alone = torch.cat([prop.embed([c]) for c in contents])
    torch.testing.assert_close(together, alone)


def test_item_item_graphs_attach_to_the_neighbours_items(hand_dataset):
    enc, kg = _encoder(hand_dataset, item_item=True)
    out = InductivePropagator(enc, kg, top_n=3).embed(_contents())
    assert out.shape == (3, 8) and torch.isfinite(out).all()


def test_propagator_errors_name_the_fix(hand_dataset):
    enc, kg = _encoder(hand_dataset)
    prop = InductivePropagator(enc, kg, top_n=3)
    with pytest.raises(SearchError, match="unknown modality"):
        prop.embed([{"audio": np.zeros(3)}])
    with pytest.raises(SearchError, match="dimension 3"):
        prop.embed([{"text": np.zeros(3)}])


def test_paper_mapping_is_the_modality_projection(hand_dataset):
    enc, _ = _encoder(hand_dataset)
    kinds = {m: "feature" for m in enc.modalities}
    qe = QueryEncoder(enc, {m: None for m in enc.modalities}, kinds, mapping="paper")
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    i = enc.modalities.index("text")
    with torch.no_grad():
        want = torch.nn.functional.normalize(enc.project(i, torch.from_numpy(x)), dim=-1).numpy()
    np.testing.assert_allclose(qe.map({"text": x}), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(qe.encode_vectors(x, "text"), want, rtol=1e-5, atol=1e-6)
    y = np.random.default_rng(1).normal(size=(2, 5)).astype(np.float32)
    with torch.no_grad():
        zy = torch.nn.functional.normalize(
            enc.project(enc.modalities.index("image"), torch.from_numpy(y)), dim=-1
        )
    np.testing.assert_allclose(qe.map({"text": x, "image": y}), (want + zy.numpy()) / 2, rtol=1e-5, atol=1e-6)


def test_vector_queries_come_at_the_raw_width_when_features_were_reduced(hand_dataset):
    enc, _ = _encoder(hand_dataset, feature_dim=3)
    kinds = {m: "feature" for m in enc.modalities}
    qe = QueryEncoder(enc, {m: None for m in enc.modalities}, kinds, mapping="paper")
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)  # raw text width 6 > 3
    i = enc.modalities.index("text")
    with torch.no_grad():
        want = torch.nn.functional.normalize(enc.project(i, torch.from_numpy(x)), dim=-1).numpy()
    np.testing.assert_allclose(qe.encode_vectors(x, "text"), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(SearchError, match="dimension 3"):
        qe.encode_vectors(x[:, :3], "text")


def test_text_queries_on_a_trained_run(tiny_run):
    qe = QueryEncoder.from_run(tiny_run, "paper", "all")
    assert qe.query_modalities == ["title", "description", "review"]
    assert QueryEncoder.from_run(tiny_run, "paper", "first").query_modalities == ["title"]
    assert QueryEncoder.from_run(tiny_run, "paper", "review").query_modalities == ["review"]
    out = qe.encode_text(["red frying pan", "wireless headphones"])
    assert out.shape == (2, 64) and np.isfinite(out).all()
    prop = QueryEncoder.from_run(tiny_run, "propagated", "all")
    assert prop.encode_text(["red frying pan"]).shape == (1, 64)
    assert prop.encode_vectors(np.ones(32)).shape == (1, 64)  # the image modality (32-d)


def test_query_errors_name_the_field_and_the_fix(tiny_run):
    qe = QueryEncoder.from_run(tiny_run, "paper", "all")
    for empty in ([""], ["   "], []):
        with pytest.raises(SearchError, match="query is empty"):
            qe.encode_text(empty)
    with pytest.raises(SearchError, match="query_modality=colour"):
        QueryEncoder.from_run(tiny_run, "paper", "colour")
    with pytest.raises(SearchError, match="search.mapping=magic"):
        QueryEncoder.from_run(tiny_run, "magic", "all")
    with pytest.raises(SearchError, match="dimension 7"):
        qe.encode_vectors(np.ones(7))
    with pytest.raises(SearchError, match="not a feature modality"):
        qe.encode_vectors(np.ones(32), "title")


def test_runs_without_an_emmkg_encoder_are_refused(tiny_run):
    class LightGCNRun:
        run_dir = "runs/lightgcn"
        cfg = OmegaConf.create({"model": {"name": "lightgcn"}})
        model = torch.nn.Linear(2, 2)

    with pytest.raises(SearchError, match="model=emmkgr"):
        QueryEncoder.from_run(LightGCNRun(), "paper", "all")

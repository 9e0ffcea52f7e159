import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.nn.encoder import EMMKGEncoder
from emmkgr_pyg.search import SearchError
from emmkgr_pyg.search.query import QueryEncoder


def _encoder(dataset, feature_dim=None):
    kg = build_emmkg(dataset, top_n=3, knn=KNNBuilder(symmetric=True, progress=False))
    torch.manual_seed(0)
    return EMMKGEncoder(kg, dim=8, num_layers=2, feature_dim=feature_dim), kg


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


def _projected(encoder, modality, x):
    """normalize(f_proj^m(x)), ``[B, d]``."""
    with torch.no_grad():
        z = encoder.project(encoder.modalities.index(modality), torch.as_tensor(x, dtype=torch.float32))
        return torch.nn.functional.normalize(z, dim=-1).numpy()


def test_text_queries_on_a_trained_run(tiny_run):
    qe = QueryEncoder.from_run(tiny_run, "paper", "all")
    assert qe.query_modalities == ["title", "description", "review"]
    assert QueryEncoder.from_run(tiny_run, "paper", "first").query_modalities == ["title"]
    assert QueryEncoder.from_run(tiny_run, "paper", "review").query_modalities == ["review"]
    enc = tiny_run.model.encoder
    texts = ["red frying pan", "wireless headphones"]
    raw = {m: qe.f_enc[m].encode(texts, progress=False) for m in qe.query_modalities}
    # paper: the mean over the query modalities of the normalised f_proj^m(f_enc^m(q))
    want = np.mean([_projected(enc, m, raw[m]) for m in qe.query_modalities], axis=0)
    out = qe.encode_text(texts)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[0], out[1])
    first = QueryEncoder.from_run(tiny_run, "paper", "first").encode_text(texts)
    np.testing.assert_allclose(first, _projected(enc, "title", raw["title"]), rtol=1e-5, atol=1e-6)
    # propagated: the query is a new item whose content is its f_enc^m(q) in every query modality
    prop = QueryEncoder.from_run(tiny_run, "propagated", "all")
    want = prop.propagator.embed([{m: raw[m][0] for m in qe.query_modalities}]).numpy()
    np.testing.assert_allclose(prop.encode_text(texts[:1]), want, rtol=1e-5, atol=1e-6)
    (image,) = [m for m in qe.modalities if qe.kinds[m] != "text"]
    want = prop.propagator.embed([{image: np.ones(32, dtype=np.float32)}]).numpy()
    np.testing.assert_allclose(prop.encode_vectors(np.ones(32)), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(SearchError, match="unknown modality"):  # the propagator's errors, as search's
        prop.map({"audio": np.ones((1, 3))})


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

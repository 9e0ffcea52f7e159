import numpy as np
import pytest

from emmkgr_pyg.runs.search import run_embeddings
from emmkgr_pyg.search import ItemIndex, ItemMeta, SearchError
from emmkgr_pyg.search.cold_start import ColdStart
from emmkgr_pyg.search.similar import similar_items


def _content(dataset, i):
    """Everything item ``i`` has, as a new item would be given it: texts and its image vector."""
    out = {}
    for m, mod in dataset.modalities.items():
        row = np.flatnonzero(mod.item_index == i)
        if len(row):
            out[m] = mod.raw[row[0]] if mod.kind == "text" else mod.features[row[0]]
    return out


@pytest.fixture
def index(tiny_run):
    return ItemIndex(run_embeddings(tiny_run.run_dir), ItemMeta.from_catalog(tiny_run.dataset.catalog))


def test_a_new_item_joins_the_index_without_retraining(tiny_run, index, tmp_path):
    ds = tiny_run.dataset
    cold = ColdStart.from_run(tiny_run, index)
    content = _content(ds, 5)
    assert set(content) == {"title", "description", "review", "image"}
    pos = cold.add("NEW-5", content, brand="Acme", categories=["Home & Kitchen", "Cookware"])
    assert pos == ds.n_items and index.n_items == ds.n_items + 1
    assert index.meta.row(pos)["title"] == content["title"]
    # its twin (the item whose content it copies) is its nearest item
    rows = similar_items(index, "NEW-5", k=3)
    assert rows[0]["item_id"] == ds.catalog.item_ids[5]
    # it is found by search, and filters see its metadata
    scores, found = index.search(index.vector(pos)[None], 3)
    assert found[0, 0] == pos
    index.save(tmp_path)
    assert ItemIndex.load(tmp_path).meta.position("NEW-5") == pos


def test_the_embedding_is_the_trained_encoder_on_the_graph_with_the_item(
    tiny_run, index, reference_propagation
):
    cold = ColdStart.from_run(tiny_run, index)
    content = {"title": "Acme Red Cast Iron Frying Pan, Large", "image": np.ones(32, dtype=np.float32)}
    got = cold.embed([content])[0]
    raw = cold.encoder.raw_content(content)
    want = reference_propagation(tiny_run.model.encoder, raw, int(tiny_run.cfg.graph.top_n))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)


def test_cold_start_errors_name_the_fix(tiny_run, index):
    cold = ColdStart.from_run(tiny_run, index)
    with pytest.raises(SearchError, match="at least one modality"):
        cold.add("NEW-x", {})
    with pytest.raises(SearchError, match="modality 'colour' is not one of"):
        cold.add("NEW-x", {"colour": "red"})
    with pytest.raises(SearchError, match="empty text"):
        cold.add("NEW-x", {"title": "  "})
    with pytest.raises(SearchError, match="already in the index"):
        cold.add(tiny_run.dataset.catalog.item_ids[0], {"title": "a pan"})
    assert index.n_items == tiny_run.dataset.n_items

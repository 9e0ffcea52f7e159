"""InductivePropagator against the dense reference (``reference_propagation``, tests/conftest.py):
the new item appended to the whole graph and the encoder's layers run from scratch."""

import numpy as np
import pytest
import torch

from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.nn.encoder import EMMKGEncoder
from emmkgr_pyg.nn.inductive import InductivePropagator


def _encoder(dataset, layers=2, self_loops=False, item_item=False, top_n=3):
    kg = build_emmkg(
        dataset, top_n=top_n, item_item=item_item, knn=KNNBuilder(symmetric=True, progress=False)
    )
    torch.manual_seed(0)
    return EMMKGEncoder(kg, dim=8, num_layers=layers, add_self_loops=self_loops), kg


def _contents(seed=1):
    """Both modalities, only the image, only the text (``tiny_dataset``: 6-d features each)."""
    rng = np.random.default_rng(seed)
    return [
        {"text": rng.normal(size=6), "image": rng.normal(size=6)},
        {"image": rng.normal(size=6)},
        {"text": rng.normal(size=6)},
    ]


def _owners(encoder, kg):
    """The item of each modality node, per modality."""
    return {m: kg[m].item for m in encoder.modalities}


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("self_loops", [False, True])
def test_new_items_get_their_exact_embedding_in_the_extended_graph(
    tiny_dataset, reference_propagation, layers, self_loops
):
    enc, kg = _encoder(tiny_dataset, layers, self_loops)
    contents = _contents()
    got = InductivePropagator(enc, kg, top_n=3).embed(contents)
    assert got.shape == (3, 8)
    for j, c in enumerate(contents):
        torch.testing.assert_close(got[j], reference_propagation(enc, c, 3), atol=1e-5, rtol=1e-4)


def test_deeper_encoders_are_close_but_approximate(tiny_dataset, reference_propagation):
    enc, kg = _encoder(tiny_dataset, layers=3)
    got = InductivePropagator(enc, kg, top_n=3).embed(_contents()[:1])[0]
    want = reference_propagation(enc, _contents()[0], 3)
    assert torch.nn.functional.cosine_similarity(got, want, dim=0) > 0.95
    assert not torch.allclose(got, want, atol=1e-4)


def test_batch_items_are_embedded_independently(tiny_dataset):
    enc, kg = _encoder(tiny_dataset)
    prop = InductivePropagator(enc, kg, top_n=3)
    contents = _contents()
    together = prop.embed(contents)
    alone = torch.cat([prop.embed([c]) for c in contents])
    torch.testing.assert_close(together, alone)


@pytest.mark.parametrize("self_loops", [False, True])
def test_item_item_graphs_attach_to_the_neighbours_items(tiny_dataset, reference_propagation, self_loops):
    # one layer: exact (existing nodes enter at layer 0 only); item-item edges found through both
    # modalities are one edge
    enc, kg = _encoder(tiny_dataset, layers=1, self_loops=self_loops, item_item=True)
    contents = _contents()
    got = InductivePropagator(enc, kg, top_n=3).embed(contents)
    for j, c in enumerate(contents):
        want = reference_propagation(enc, c, 3, item_owner=_owners(enc, kg))
        torch.testing.assert_close(got[j], want, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(want, reference_propagation(enc, c, 3), atol=1e-4)  # the edges count


def test_propagator_errors_name_the_fix(tiny_dataset):
    enc, kg = _encoder(tiny_dataset)
    prop = InductivePropagator(enc, kg, top_n=3)
    with pytest.raises(ValueError, match="unknown modality"):
        prop.embed([{"audio": np.zeros(3)}])
    with pytest.raises(ValueError, match="dimension 3"):
        prop.embed([{"text": np.zeros(3)}])

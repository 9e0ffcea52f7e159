"""EMMKGEncoder against a dense E^MM and H = mean_l A~^l E^MM built from its own parameters."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import HeteroData

from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn.encoder import EMMKGEncoder, make_projection


def dense_reference(
    enc: EMMKGEncoder, kg: HeteroData, dense_adj, self_loops=False, x0: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 4 written out: E^MM = [E^i; f_proj(x_m) ...] (or ``x0``), H = 1/(L+1) sum_l A~^l E^MM."""
    if x0 is None:
        parts = [enc.item_emb.weight]
        for i, m in enumerate(enc.modalities):
            z = enc.proj[i](kg[m].x)
            if enc.proj_norm is not None:
                z = enc.proj_norm * z / z.norm(dim=-1, keepdim=True)
            parts.append(z)
        x0 = torch.cat(parts)
    e = x0.double()
    view = kg_view(kg)
    a = dense_adj(view.edge_index, view.num_nodes, self_loops=self_loops)
    h, out = e, e
    for _ in range(enc.num_layers):
        h = a @ h
        out = out + h
    return out / (enc.num_layers + 1)


@pytest.mark.parametrize("layers", [0, 1, 3])
@pytest.mark.parametrize("projection", ["linear", "mlp"])
def test_propagate_matches_dense_reference(kg, dense_adj, layers, projection):
    torch.manual_seed(0)
    enc = EMMKGEncoder(kg, dim=6, num_layers=layers, projection=projection)
    out = enc.propagate()
    assert out.shape == (4 + 3 + 2, 6)
    ref = dense_reference(enc, kg, dense_adj)
    assert (out.double() - ref).abs().max() < 1e-5


def test_forward_splits_by_node_type(kg, dense_adj):
    torch.manual_seed(0)
    enc = EMMKGEncoder(kg, dim=8, num_layers=2)
    out = enc()
    assert list(out) == ["item", "text", "image"]
    assert {k: tuple(v.shape) for k, v in out.items()} == {"item": (4, 8), "text": (3, 8), "image": (2, 8)}
    ref = dense_reference(enc, kg, dense_adj)
    torch.testing.assert_close(torch.cat(list(out.values())).double(), ref, rtol=0, atol=1e-5)
    assert enc.modalities == ["text", "image"] and enc.n_items == 4


def test_initial_embeddings_stack_items_and_projections(kg, dense_adj):
    torch.manual_seed(0)
    enc = EMMKGEncoder(kg, dim=4, num_layers=1)
    e = enc.initial_embeddings()
    assert e.shape == (9, 4)
    torch.testing.assert_close(e[:4], enc.item_emb.weight)
    torch.testing.assert_close(e[4:7], enc.proj[0](kg["text"].x))
    torch.testing.assert_close(e[7:], enc.proj[1](kg["image"].x))
    # propagate from a given x0 is the same operator, applied to x0 instead of the embeddings
    x0 = torch.randn(9, 4)
    ref = dense_reference(enc, kg, dense_adj, x0=x0)
    assert not torch.allclose(ref, x0.double())  # the graph mixes rows: not the identity
    assert (enc.propagate(x0).double() - ref).abs().max() < 1e-5


def test_self_loops_match_dense_a_plus_i(kg, dense_adj):
    torch.manual_seed(0)
    enc = EMMKGEncoder(kg, dim=4, num_layers=2, add_self_loops=True)
    assert (
        enc.propagate().double() - dense_reference(enc, kg, dense_adj, self_loops=True)
    ).abs().max() < 1e-5


def test_mlp_projection_and_bad_projection():
    mlp = make_projection(10, 4, "mlp")
    assert isinstance(mlp, torch.nn.Sequential)
    assert [type(m) for m in mlp] == [torch.nn.Linear, torch.nn.GELU, torch.nn.Linear]
    assert mlp[0].in_features == 10 and mlp[0].out_features == 10 and mlp[2].out_features == 4
    assert make_projection(3, 4, "mlp", hidden=7)[0].out_features == 7
    assert isinstance(make_projection(3, 4), torch.nn.Linear)
    with pytest.raises(ValueError, match="make_projection: kind 'conv' is not one of"):
        make_projection(3, 4, "conv")


def test_proj_norm_scales_projected_rows(kg, dense_adj):
    torch.manual_seed(0)
    enc = EMMKGEncoder(kg, dim=6, num_layers=2, proj_norm=2.5)
    e = enc.initial_embeddings()
    torch.testing.assert_close(e[4:].norm(dim=-1), torch.full((5,), 2.5))
    assert not torch.allclose(e[:4].norm(dim=-1), torch.full((4,), 2.5))  # item ids untouched
    assert (enc.propagate().double() - dense_reference(enc, kg, dense_adj)).abs().max() < 1e-5


def test_frozen_features_are_non_persistent_buffers(kg):
    enc = EMMKGEncoder(kg, dim=4, train_features=False)
    params = dict(enc.named_parameters())
    assert "feat_0" not in params and "feat_1" not in params
    buffers = dict(enc.named_buffers())
    torch.testing.assert_close(buffers["feat_0"], kg["text"].x)
    torch.testing.assert_close(buffers["feat_1"], kg["image"].x)
    state = enc.state_dict()
    assert not any(k.startswith("feat_") for k in state) and "edge_index" not in state
    enc.propagate().sum().backward()
    assert enc.features(0).grad is None and not enc.features(0).requires_grad


def test_trainable_features_are_parameters(kg):
    enc = EMMKGEncoder(kg, dim=4, train_features=True)
    params = dict(enc.named_parameters())
    assert {"feat_0", "feat_1"} <= set(params)
    assert "feat_0" in enc.state_dict()
    torch.testing.assert_close(params["feat_0"].detach(), kg["text"].x)
    assert params["feat_0"].data_ptr() != kg["text"].x.data_ptr()  # a copy: the graph stays as it was
    enc.propagate().pow(2).sum().backward()
    assert params["feat_0"].grad is not None and params["feat_0"].grad.abs().sum() > 0


def test_backward_reaches_item_embeddings_and_projections(kg):
    enc = EMMKGEncoder(kg, dim=4, num_layers=2)
    enc()["item"].pow(2).sum().backward()
    assert enc.item_emb.weight.grad.abs().sum() > 0
    for p in enc.proj.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_reset_changes_every_parameter(kg):
    enc = EMMKGEncoder(kg, dim=4, projection="mlp")
    before = {k: v.detach().clone() for k, v in enc.named_parameters()}
    first = enc.propagate().detach()
    enc.reset_parameters()
    for k, v in enc.named_parameters():
        assert not torch.equal(before[k], v), k
    assert not torch.allclose(first, enc.propagate())


def test_first_node_type_must_be_item(kg):
    data = HeteroData()
    data["text"].x = torch.randn(2, 3)
    data["item"].num_nodes = 2
    data["item", "has_text", "text"].edge_index = torch.tensor([[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="EMMKGEncoder: the graph's first node type must be 'item'"):
        EMMKGEncoder(data, dim=4)


def test_feature_dim_reduces_frozen_features_once(kg):
    torch.manual_seed(0)
    dims = {m: kg[m].x.size(1) for m in ("text", "image")}
    enc = EMMKGEncoder(kg, dim=4, num_layers=1, feature_dim=2)
    for i, m in enumerate(enc.modalities):
        basis = getattr(enc, f"basis_{i}")
        if dims[m] > 2:
            assert basis.shape == (dims[m], 2) and enc.features(i).shape[1] == 2
            torch.testing.assert_close(enc.features(i), kg[m].x @ basis)
            assert enc.proj[i].in_features == 2
        else:
            assert basis is None
        assert enc.input_dim(i) == dims[m]  # queries and new items come at the raw width
        # raw content (a query, a cold-start item) is projected through the same basis
        torch.testing.assert_close(enc.project(i, kg[m].x), enc.project(i, enc.features(i), reduced=True))
    with pytest.raises(ValueError, match="feature_dim .* train_features"):
        EMMKGEncoder(kg, feature_dim=2, train_features=True)


def test_feature_dim_auto_reduces_only_features_wider_than_four_times_dim(kg):
    # text is 5-d, image 3-d: with dim=1 the threshold is 4, so only text is reduced (to at most
    # 4 directions: its 3 rows span 3)
    enc = EMMKGEncoder(kg, dim=1, num_layers=1, feature_dim="auto")
    text, image = enc.modalities.index("text"), enc.modalities.index("image")
    assert getattr(enc, f"basis_{text}").size(0) == 5 and enc.features(text).size(1) <= 4
    assert getattr(enc, f"basis_{image}") is None and enc.features(image).size(1) == 3
    assert enc.input_dim(enc.modalities.index("text")) == 5
    trained = EMMKGEncoder(kg, dim=1, feature_dim="auto", train_features=True)  # nothing to reduce
    assert all(getattr(trained, f"basis_{i}") is None for i in range(len(trained.modalities)))


def test_float16_features_stay_float16_and_propagate_like_float32(kg):
    half = kg.clone()
    for m in ("text", "image"):
        half[m].x = kg[m].x.half()
    torch.manual_seed(0)
    enc32 = EMMKGEncoder(kg, dim=4)
    enc16 = EMMKGEncoder(half, dim=4)
    enc16.load_state_dict(enc32.state_dict())
    assert enc16.features(0).dtype == torch.float16
    out16 = enc16.propagate()
    assert out16.dtype == torch.float32
    torch.testing.assert_close(out16, enc32.propagate(), atol=2e-3, rtol=2e-3)


def test_reduced_float16_features_stay_float16_and_go_by_blocks_of_rows(kg, monkeypatch):
    import emmkgr_pyg.nn.encoder as encoder_module

    half = kg.clone()
    for m in ("text", "image"):
        half[m].x = kg[m].x.half()
    text = EMMKGEncoder(half, dim=4, feature_dim=2).modalities.index("text")
    monkeypatch.setattr(encoder_module, "PROJECT_CHUNK_ROWS", 2)  # the 3 text rows in 2 blocks
    enc16 = EMMKGEncoder(half, dim=4, feature_dim=2)
    basis = getattr(enc16, f"basis_{text}")
    reduced = enc16.features(text)
    assert reduced.dtype == torch.float16 and reduced.shape == (half["text"].x.size(0), 2)
    # each row as the float32 product, rounded once to float16
    torch.testing.assert_close(reduced, (half["text"].x.float() @ basis).half(), rtol=0, atol=0)
    enc32 = EMMKGEncoder(kg, dim=4, feature_dim=2)
    assert enc32.features(text).dtype == torch.float32
    torch.testing.assert_close(reduced.float(), enc32.features(text), atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("feature_dim", [None, 2])
def test_projection_without_autograd_goes_by_blocks_of_rows_with_the_same_result(
    kg, monkeypatch, feature_dim
):
    import emmkgr_pyg.nn.encoder as encoder_module

    half = kg.clone()
    for m in ("text", "image"):
        half[m].x = kg[m].x.half()
    torch.manual_seed(0)
    enc = EMMKGEncoder(half, dim=4, feature_dim=feature_dim)
    whole = enc.initial_embeddings().detach()  # with autograd: every row at once
    monkeypatch.setattr(encoder_module, "PROJECT_CHUNK_ROWS", 2)  # modalities have 3+ rows
    calls = []
    enc.proj[0].register_forward_hook(lambda mod, inp, out: calls.append(inp[0].size(0)))
    with torch.no_grad():
        blocks = enc.initial_embeddings()
    assert max(calls) == 2 and sum(calls) == half[enc.modalities[0]].x.size(0)
    torch.testing.assert_close(blocks, whole, atol=1e-6, rtol=1e-6)  # BLAS blocks by row count


def with_entities(kg: HeteroData) -> HeteroData:
    """``kg`` plus a ``brand`` entity type (2 nodes) linked to items 0, 1 and 3 (item 3 has no
    modality: the entity is its only path to other items)."""
    data = kg.clone()
    data["brand"].num_nodes = 2
    data["item", "has_brand", "brand"].edge_index = torch.tensor([[0, 3, 1], [0, 0, 1]])
    data["brand", "brand_of", "item"].edge_index = torch.tensor([[0, 0, 1], [0, 3, 1]])
    return data


def test_entity_nodes_are_learnable_rows_after_the_modalities(kg, dense_adj):
    data = with_entities(kg)
    torch.manual_seed(0)
    enc = EMMKGEncoder(data, dim=6, num_layers=2)
    assert enc.modalities == ["text", "image"] and enc.entities == ["brand"]
    e = enc.initial_embeddings()
    assert e.shape == (4 + 3 + 2 + 2, 6)
    torch.testing.assert_close(e[-2:], enc.entity_emb.weight)
    x0 = torch.cat([enc.item_emb.weight] + [enc.proj[i](data[m].x) for i, m in enumerate(["text", "image"])])
    ref = dense_reference(enc, data, dense_adj, x0=torch.cat([x0, enc.entity_emb.weight]))
    assert (enc.propagate().double() - ref).abs().max() < 1e-5
    out = enc()
    assert list(out) == ["item", "text", "image", "brand"] and out["brand"].shape == (2, 6)
    # item 3 now hears item 0 through the shared brand
    assert not torch.allclose(out["item"][3], enc.item_emb.weight[3] / 3)
    enc()["item"][3].sum().backward()
    assert enc.entity_emb.weight.grad[0].abs().sum() > 0 and enc.item_emb.weight.grad[0].abs().sum() > 0


def test_entity_table_is_reset_and_initialised_like_the_items(kg):
    enc = EMMKGEncoder(with_entities(kg), dim=4, item_init_bound=0.05)
    w = enc.entity_emb.weight.detach().clone()
    assert w.abs().max() <= 0.05
    enc.reset_parameters()
    assert not torch.equal(w, enc.entity_emb.weight)
    assert EMMKGEncoder(kg, dim=4).entity_emb is None


def test_entity_types_must_follow_the_modalities(kg):
    data = HeteroData()
    data["item"].num_nodes = 2
    data["brand"].num_nodes = 1
    data["text"].x = torch.randn(2, 3)
    data["item", "has_brand", "brand"].edge_index = torch.tensor([[0, 1], [0, 0]])
    data["item", "has_text", "text"].edge_index = torch.tensor([[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="must follow the modalities"):
        EMMKGEncoder(data, dim=4)

"""LightGCNConv against dense Eq. 3-4, every input form, both backends, caching and gradients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch_geometric.nn import LGConv
from torch_sparse import SparseTensor

from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn.conv import BACKENDS, LightGCNConv, lightgcn_norm, resolve_backend

BOTH = ["torch", "torch_sparse"]


@pytest.fixture
def graph(kg):
    """The hand-built heterogeneous graph as one homogeneous graph: (edge_index, num_nodes)."""
    view = kg_view(kg)
    return view.edge_index, view.num_nodes


def features(n, f=4, dtype=torch.float32, seed=0):
    return torch.randn(n, f, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def apply(conv, x, adj, layers, **kw):
    for _ in range(layers):
        x = conv(x, adj, **kw)
    return x


@pytest.mark.parametrize("backend", ["auto", *BOTH])
@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_matches_dense_eq4(graph, dense_adj, backend, layers):
    ei, n = graph
    x = features(n)
    a = dense_adj(ei, n)
    out = apply(LightGCNConv(backend=backend), x, ei, layers)
    assert out.shape == x.shape and out.dtype == torch.float32
    ref = torch.linalg.matrix_power(a, layers) @ x.double()
    assert (out.double() - ref).abs().max() < 1e-5


def test_normalisation_is_over_the_union_graph_with_in_degree(graph, dense_adj):
    ei, n = graph
    new_ei, w = lightgcn_norm(ei, n)
    a = dense_adj(ei, n)
    assert new_ei.shape == ei.shape
    torch.testing.assert_close(w.double(), a[new_ei[1], new_ei[0]], rtol=0, atol=1e-6)
    # item 3 has no edges: no message reaches it
    out = LightGCNConv()(features(n), ei)
    assert torch.equal(out[3], torch.zeros(4))


@pytest.mark.parametrize("backend", BOTH)
def test_gradients_match_dense_reference(graph, dense_adj, backend):
    ei, n = graph
    x = features(n, dtype=torch.float64).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    target = features(n, seed=1, dtype=torch.float64)
    out = apply(LightGCNConv(backend=backend), x, ei, 3)
    (out * target).sum().backward()
    a = dense_adj(ei, n)
    (a @ (a @ (a @ x_ref)) * target).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BOTH)
@pytest.mark.parametrize("cached", [False, True])
def test_gradcheck_float64(graph, backend, cached):
    ei, n = graph
    conv = LightGCNConv(backend=backend, cached=cached)
    x = features(n, 2, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda h: conv(conv(h, ei), ei), (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("backend", BOTH)
def test_every_input_form_agrees(graph, backend):
    ei, n = graph
    x = features(n)
    conv = LightGCNConv(backend=backend)
    expected = conv(x, ei)
    row, col = ei
    ones = torch.ones(ei.size(1))
    adj_t = SparseTensor(row=col, col=row, sparse_sizes=(n, n))  # row = target
    coo = torch.sparse_coo_tensor(torch.stack([col, row]), ones, (n, n), check_invariants=True)
    csr = coo.coalesce().to_sparse_csr()
    forms = {
        "edge_index + ones": conv(x, ei, ones),
        "SparseTensor": conv(x, adj_t),
        "SparseTensor with values": conv(x, adj_t.set_value(ones, layout="coo")),
        "torch.sparse COO coalesced": conv(x, coo.coalesce()),
        "torch.sparse COO": conv(x, coo),
        "torch.sparse CSR": conv(x, csr),
    }
    for name, out in forms.items():
        assert out.shape == expected.shape, name
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6, msg=name)


def test_sparse_input_is_left_as_it_was(graph):
    # an uncoalesced COO adjacency must not come back flagged as coalesced: later operations on
    # it (to_sparse_csr, ...) trust that flag and silently give a wrong matrix
    ei, n = graph
    x = features(n)
    row, col = ei
    coo = torch.sparse_coo_tensor(
        torch.stack([col, row]), torch.ones(ei.size(1)), (n, n), check_invariants=True
    )
    assert not coo.is_coalesced()
    dense_before = coo.to_dense()
    conv = LightGCNConv()
    expected = conv(x, ei)
    torch.testing.assert_close(conv(x, coo), expected)
    assert not coo.is_coalesced()
    torch.testing.assert_close(coo.to_sparse_csr().to_dense(), dense_before)
    torch.testing.assert_close(conv(x, coo.to_sparse_csr()), expected)


def test_backends_agree_with_weights(graph):
    ei, n = graph
    x = features(n)
    w = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(3)) + 0.5
    outs = [apply(LightGCNConv(backend=b), x, ei, 2, edge_weight=w) for b in ("auto", *BOTH)]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=0, atol=1e-6)


def test_weighted_edges_match_dense(graph, dense_adj):
    ei, n = graph
    x = features(n)
    w = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(4)) + 0.5
    out = LightGCNConv()(x, ei, w)
    ref = dense_adj(ei, n, w) @ x.double()
    assert (out.double() - ref).abs().max() < 1e-5


def test_no_normalisation_uses_the_weights_as_given(graph, dense_adj):
    ei, n = graph
    x = features(n)
    w = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(5))
    a = torch.zeros(n, n).index_put((ei[1], ei[0]), w, accumulate=True)
    for backend in BOTH:
        out = LightGCNConv(normalize=False, backend=backend)(x, ei, w)
        torch.testing.assert_close(out, a @ x, rtol=0, atol=1e-6)


def test_cached_adjacency_is_reused_until_reset(graph, dense_adj):
    ei, n = graph
    x = features(n)
    other = ei[:, : ei.size(1) // 2]
    conv = LightGCNConv(cached=True)
    first = conv(x, ei)
    torch.testing.assert_close(conv(x, other), first)  # the cached graph, not `other`
    conv.reset_parameters()
    fresh = conv(x, other)
    assert (fresh.double() - dense_adj(other, n) @ x.double()).abs().max() < 1e-5
    assert not torch.allclose(fresh, first)
    # without caching every call uses its own graph
    plain = LightGCNConv(cached=False)
    plain(x, ei)
    torch.testing.assert_close(plain(x, other), fresh)


@pytest.mark.parametrize("backend", BOTH)
def test_self_loops_match_dense_a_plus_i(graph, dense_adj, backend):
    ei, n = graph
    x = features(n)
    out = apply(LightGCNConv(add_self_loops=True, backend=backend), x, ei, 2)
    a = dense_adj(ei, n, self_loops=True)
    assert (out.double() - a @ (a @ x.double())).abs().max() < 1e-5


def test_self_loops_on_a_graph_that_has_one_still_add_i(dense_adj):
    # the docstrings promise A + I; node 2 already has a self-loop, so its entry must become 2
    ei = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 2, 2, 0]])
    x = features(3, 2)
    a = dense_adj(ei, 3, self_loops=True)
    assert float(a[2, 2]) == pytest.approx(2.0 / 3.0)  # (1 + 1) / sqrt(3 * 3)
    for backend in BOTH:
        out = LightGCNConv(add_self_loops=True, backend=backend)(x, ei)
        assert (out.double() - a @ x.double()).abs().max() < 1e-5


def test_learnable_edge_weights_get_gradients(graph, dense_adj):
    ei, n = graph
    x = features(n, dtype=torch.float64)
    w = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(6), dtype=torch.float64) + 0.5
    w1, w2 = w.clone().requires_grad_(), w.clone().requires_grad_()
    target = features(n, seed=2, dtype=torch.float64)
    out = apply(LightGCNConv(), x, ei, 2, edge_weight=w1)
    (out * target).sum().backward()
    a = dense_adj(ei, n, w2)
    ref = a @ (a @ x)
    (ref * target).sum().backward()
    assert (out - ref).abs().max() < 1e-5
    assert w1.grad is not None and w1.grad.abs().sum() > 0
    torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-6)


def test_same_as_pyg_lgconv_on_a_symmetric_graph():
    ei = torch.tensor([[0, 1, 1, 2, 2, 3, 0, 4], [1, 0, 2, 1, 3, 2, 4, 0]])
    x = features(5, 3)
    for backend in BOTH:
        torch.testing.assert_close(LightGCNConv(backend=backend)(x, ei), LGConv()(x, ei), rtol=0, atol=1e-6)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="LightGCNConv: add_self_loops=True needs normalize=True"):
        LightGCNConv(normalize=False, add_self_loops=True)
    with pytest.raises(ValueError, match="LightGCNConv: backend 'cusparse' is not one of"):
        LightGCNConv(backend="cusparse")
    assert BACKENDS == ("auto", "torch_sparse", "torch")
    assert resolve_backend("auto") == "torch"
    assert "backend=torch" in repr(LightGCNConv())


def test_without_torch_sparse_in_a_subprocess(graph, dense_adj):
    ei, n = graph
    x = features(n)
    expected = (dense_adj(ei, n) @ (dense_adj(ei, n) @ x.double())).tolist()
    code = textwrap.dedent(
        f"""
        import json, torch
        from emmkgr_pyg.nn import conv
        assert conv.HAS_TORCH_SPARSE is False, conv.HAS_TORCH_SPARSE
        try:
            conv.LightGCNConv(backend="torch_sparse")
        except ValueError as e:
            assert "needs the torch-sparse package" in str(e), e
        else:
            raise SystemExit("backend='torch_sparse' accepted without torch-sparse")
        x = torch.tensor({x.tolist()}, requires_grad=True)
        ei = torch.tensor({ei.tolist()})
        layer = conv.LightGCNConv(cached=True)
        out = layer(layer(x, ei), ei)
        out.sum().backward()
        assert x.grad is not None
        print(json.dumps(out.tolist()))
        """
    )
    env = {**os.environ, "EMMKGR_NO_TORCH_SPARSE": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = torch.tensor(json.loads(res.stdout.strip().splitlines()[-1]), dtype=torch.float64)
    assert (out - torch.tensor(expected, dtype=torch.float64)).abs().max() < 1e-5

"""LightGCNConv against dense Eq. 3-4, every input form, both backends, caching and gradients."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch_geometric.nn import LGConv

from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn.conv import (
    BACKENDS,
    LightGCNConv,
    lightgcn_norm,
    resolve_backend,
    sparse_adjacency,
    spmm_with_transpose,
)

# torch-sparse is an optional extra: its backend's cases skip without it, the rest still run
NEEDS_TORCH_SPARSE = pytest.mark.skipif(
    importlib.util.find_spec("torch_sparse") is None, reason="needs the 'sparse' extra (torch-sparse)"
)
BOTH = ["torch", pytest.param("torch_sparse", marks=NEEDS_TORCH_SPARSE)]


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
    SparseTensor = pytest.importorskip("torch_sparse").SparseTensor
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
    pytest.importorskip("torch_sparse")
    outs = [apply(LightGCNConv(backend=b), x, ei, 2, edge_weight=w) for b in BACKENDS]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=0, atol=1e-6)


def test_weighted_edges_match_dense(graph, dense_adj):
    ei, n = graph
    x = features(n)
    w = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(4)) + 0.5
    out = LightGCNConv()(x, ei, w)
    ref = dense_adj(ei, n, w) @ x.double()
    assert (out.double() - ref).abs().max() < 1e-5


@pytest.mark.parametrize("backend", BOTH)
def test_no_normalisation_uses_the_weights_as_given(graph, backend):
    ei, n = graph
    x = features(n)
    w = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(5))
    a = torch.zeros(n, n).index_put((ei[1], ei[0]), w, accumulate=True)
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


@pytest.mark.parametrize("backend", BOTH)
def test_self_loops_on_a_graph_that_has_one_still_add_i(dense_adj, backend):
    # the docstrings promise A + I; node 2 already has a self-loop, so its entry must become 2
    ei = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 2, 2, 0]])
    x = features(3, 2)
    a = dense_adj(ei, 3, self_loops=True)
    assert float(a[2, 2]) == pytest.approx(2.0 / 3.0)  # (1 + 1) / sqrt(3 * 3)
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


@pytest.mark.parametrize("cached", [False, True])
def test_learned_weights_keep_only_the_structure_when_cached(graph, dense_adj, cached):
    ei, n = graph
    conv = LightGCNConv(cached=cached)
    x = features(n, dtype=torch.float64)
    for seed in (7, 8):  # new weights each call: the values are never cached
        w = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        w = (w + 0.5).requires_grad_()
        out = conv(x, ei, w)
        torch.testing.assert_close(out, dense_adj(ei, n, w.detach()) @ x)
        assert conv._cached_adj is None and (conv._cached_pattern is not None) == cached
    conv.reset_parameters()
    assert conv._cached_pattern is None


@pytest.mark.parametrize("backend", BOTH)
def test_same_as_pyg_lgconv_on_a_symmetric_graph(backend):
    ei = torch.tensor([[0, 1, 1, 2, 2, 3, 0, 4], [1, 0, 2, 1, 3, 2, 4, 0]])
    x = features(5, 3)
    torch.testing.assert_close(LightGCNConv(backend=backend)(x, ei), LGConv()(x, ei), rtol=0, atol=1e-6)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="LightGCNConv: add_self_loops=True needs normalize=True"):
        LightGCNConv(normalize=False, add_self_loops=True)
    with pytest.raises(ValueError, match="LightGCNConv: backend 'cusparse' is not one of"):
        LightGCNConv(backend="cusparse")
    assert BACKENDS == ("auto", "torch_sparse", "torch")
    assert resolve_backend("auto") == "torch"
    assert "backend=torch" in repr(LightGCNConv())


def _csr_pair(ei, n, w=None):
    """``(adj_t, adj)`` as torch.sparse CSR for edges ``ei`` (row of adj_t = target)."""
    w = torch.ones(ei.size(1)) if w is None else w
    return sparse_adjacency(ei, w, n, backend="torch")


def test_propagate_called_directly_uses_its_own_graph(graph, dense_adj):
    # the backward of propagate(adj_t_B) must use B's transpose, not one left by an earlier
    # forward on graph A (the layer used to read a transpose stashed on self by forward)
    ei, n = graph
    conv = LightGCNConv()
    conv(features(n), ei)  # graph A
    other = ei[:, ::2]  # graph B: another, asymmetric graph
    adj_t, _ = _csr_pair(other, n)
    x = features(n, dtype=torch.float32).requires_grad_()
    target = features(n, seed=1)
    out = conv.propagate(adj_t, x=x, edge_weight=None, transpose=None)
    (out * target).sum().backward()
    b = torch.zeros(n, n).index_put((other[1], other[0]), torch.ones(other.size(1)), accumulate=True)
    torch.testing.assert_close(out, b @ x.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(x.grad, b.t() @ target, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cached", [False, True])
def test_forward_leaves_nothing_on_the_layer_but_the_opt_in_cache(graph, cached):
    ei, n = graph
    conv = LightGCNConv(cached=cached)
    before = dict(vars(conv))
    conv(features(n).requires_grad_(), ei)
    changed = {k for k, v in vars(conv).items() if k not in before or before[k] is not v}
    assert changed == ({"_cached_adj"} if cached else set())  # no pattern: the weights are fixed


def test_edge_weight_with_a_sparse_adjacency_raises(graph):
    ei, n = graph
    x = features(n)
    w = torch.rand(ei.size(1)) + 0.5
    adj_t, _ = _csr_pair(ei, n)
    with pytest.raises(ValueError, match="LightGCNConv: edge_weight was given with a sparse adjacency"):
        LightGCNConv()(x, adj_t, w)
    with pytest.raises(ValueError, match="put the weights in the adjacency's values"):
        LightGCNConv()(x, adj_t.to_sparse_coo(), w)
    SparseTensor = pytest.importorskip("torch_sparse").SparseTensor
    st = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(n, n))
    with pytest.raises(ValueError, match=r"LightGCNConv: edge_weight .*\(SparseTensor\)"):
        LightGCNConv()(x, st, w)
    # the weights go in the adjacency's values instead, and are then honoured
    weighted = SparseTensor(row=ei[1], col=ei[0], value=w, sparse_sizes=(n, n))
    torch.testing.assert_close(LightGCNConv()(x, weighted), LightGCNConv()(x, ei, w), rtol=0, atol=1e-6)


def test_spmm_with_transpose_backward_multiplies_by_the_given_transpose():
    # a deliberately different "transpose" shows which matrix the backward pass uses
    ei = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
    adj_t, adj = _csr_pair(ei, 3, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    x = features(3, 2).requires_grad_()
    g = features(3, 2, seed=1)
    out = spmm_with_transpose(adj_t, adj, x)
    out.backward(g)
    torch.testing.assert_close(out, adj_t.to_dense() @ x.detach())
    torch.testing.assert_close(x.grad, adj.to_dense() @ g)
    x.grad = None
    fake = (2 * adj.to_dense()).to_sparse_csr()
    spmm_with_transpose(adj_t, fake, x).backward(g)
    torch.testing.assert_close(x.grad, 2 * adj.to_dense() @ g)
    x.grad = None
    spmm_with_transpose(adj_t, None, x).backward(g)  # no transpose given: torch's own backward
    torch.testing.assert_close(x.grad, adj.to_dense() @ g)


def test_no_torch_sparse_variable_is_read_when_the_backend_is_resolved(monkeypatch):
    # read at import time it could not be switched in a running process
    monkeypatch.setenv("EMMKGR_NO_TORCH_SPARSE", "1")
    with pytest.raises(ValueError, match="backend 'torch_sparse' needs the torch-sparse package"):
        LightGCNConv(backend="torch_sparse")
    pytest.importorskip("torch_sparse")
    monkeypatch.setenv("EMMKGR_NO_TORCH_SPARSE", "0")
    assert LightGCNConv(backend="torch_sparse").backend == "torch_sparse"


def test_without_torch_sparse_in_a_subprocess(graph, dense_adj):
    ei, n = graph
    x = features(n)
    expected = (dense_adj(ei, n) @ (dense_adj(ei, n) @ x.double())).tolist()
    code = textwrap.dedent(
        f"""
        import json, torch
        from emmkgr_pyg.nn import conv
        assert conv.torch_sparse_available() is False
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

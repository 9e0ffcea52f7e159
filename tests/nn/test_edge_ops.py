import pytest
import torch

from emmkgr_pyg.nn.edge_ops import EdgePattern, edge_dot, weighted_spmm


@pytest.fixture
def graph():
    """A bipartite-shaped graph of 9 sources and 6 targets, unsorted, with a repeated edge and a
    target without edges (row 5)."""
    g = torch.Generator().manual_seed(0)
    src = torch.tensor([3, 0, 8, 1, 3, 7, 2, 2, 6, 0, 4, 3])
    dst = torch.tensor([2, 0, 4, 1, 2, 0, 3, 1, 4, 2, 0, 3])  # (3 -> 2) twice
    return torch.stack([src, dst]), 9, 6, g


def dense(edge_index, w, n_src, n_dst):
    """``A[t, s]``: the sum of the values of the edges ``s -> t``, written the obvious way."""
    a = torch.zeros(n_dst, n_src, dtype=w.dtype)
    for (s, t), v in zip(edge_index.t().tolist(), w):
        a[t, s] = a[t, s] + v
    return a


def test_weighted_spmm_matches_dense_product_and_gradients(graph):
    edge_index, n_src, n_dst, g = graph
    w = torch.randn(edge_index.size(1), generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(n_src, 4, generator=g, dtype=torch.float64, requires_grad=True)
    pattern = EdgePattern(edge_index, n_src, n_dst)
    out = weighted_spmm(pattern, w, x)
    up = torch.randn(n_dst, 4, generator=g, dtype=torch.float64)
    (out * up).sum().backward()
    got = (out.detach(), w.grad.clone(), x.grad.clone())
    w.grad = x.grad = None
    want = dense(edge_index, w, n_src, n_dst) @ x
    (want * up).sum().backward()
    torch.testing.assert_close(got[0], want.detach())
    torch.testing.assert_close(got[1], w.grad)  # d/dw_e = up[t] . x[s]
    torch.testing.assert_close(got[2], x.grad)
    assert got[0][5].abs().sum() == 0  # the target without edges


def test_reversed_pattern_aggregates_the_other_way(graph):
    edge_index, n_src, n_dst, g = graph
    w = torch.randn(edge_index.size(1), generator=g, dtype=torch.float64)
    y = torch.randn(n_dst, 3, generator=g, dtype=torch.float64)
    out = weighted_spmm(EdgePattern(edge_index, n_src, n_dst).t(), w, y)
    torch.testing.assert_close(out, dense(edge_index, w, n_src, n_dst).t() @ y)


def test_edge_dot_matches_gathered_inner_products_and_gradients(graph):
    edge_index, n_src, n_dst, g = graph
    a = torch.randn(n_dst, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n_src, 5, generator=g, dtype=torch.float64, requires_grad=True)
    pattern = EdgePattern(edge_index, n_src, n_dst)
    s = edge_dot(pattern, a, b)
    up = torch.randn(edge_index.size(1), generator=g, dtype=torch.float64)
    (s * up).sum().backward()
    got = (s.detach(), a.grad.clone(), b.grad.clone())
    a.grad = b.grad = None
    src, dst = edge_index
    want = torch.stack([a[t] @ b[u] for u, t in zip(src.tolist(), dst.tolist())])
    (want * up).sum().backward()
    torch.testing.assert_close(got[0], want.detach())
    torch.testing.assert_close(got[1], a.grad)
    torch.testing.assert_close(got[2], b.grad)
    # the reversed pattern scores the same edges with the roles of a and b swapped
    torch.testing.assert_close(edge_dot(pattern.t(), b, a), want.detach())


def test_gradcheck(graph):
    edge_index, n_src, n_dst, g = graph
    pattern = EdgePattern(edge_index, n_src, n_dst)
    w = torch.randn(edge_index.size(1), generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(n_src, 3, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.randn(n_dst, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, x: weighted_spmm(pattern, w, x), (w, x))
    assert torch.autograd.gradcheck(lambda a, x: edge_dot(pattern, a, x), (a, x))


def test_shapes_are_checked(graph):
    edge_index, n_src, n_dst, _ = graph
    pattern = EdgePattern(edge_index, n_src, n_dst)
    with pytest.raises(ValueError, match="12 edges but edge values of shape"):
        weighted_spmm(pattern, torch.ones(11), torch.ones(n_src, 2))
    with pytest.raises(ValueError, match="'x' has 6 rows; the pattern has 9"):
        weighted_spmm(pattern, torch.ones(12), torch.ones(n_dst, 2))
    with pytest.raises(ValueError, match="'a' has 9 rows; the pattern has 6"):
        edge_dot(pattern, torch.ones(n_src, 2), torch.ones(n_src, 2))


def test_many_repeated_edges_add_up():
    """More edges than cells (every target row holds repeats): each entry sums its edges' values,
    and every edge gets its entry's inner product and gradient."""
    g = torch.Generator().manual_seed(2)
    edge_index = torch.stack(
        [torch.randint(0, 3, (40,), generator=g), torch.randint(0, 4, (40,), generator=g)]
    )
    w = torch.randn(40, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    pattern = EdgePattern(edge_index, 3, 4)
    out = weighted_spmm(pattern, w, x)
    (out.sum() + edge_dot(pattern, out.detach(), x).sum()).backward()
    got = (out.detach(), w.grad.clone(), x.grad.clone())
    w.grad = x.grad = None
    want = dense(edge_index, w, 3, 4) @ x
    src, dst = edge_index
    (want.sum() + (want.detach()[dst] * x[src]).sum()).backward()
    torch.testing.assert_close(got[0], want.detach())
    torch.testing.assert_close(got[1], w.grad)
    torch.testing.assert_close(got[2], x.grad)

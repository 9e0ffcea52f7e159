r"""LightGCN propagation over the union adjacency of a (heterogeneous) graph (Eq. 3-4)."""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.typing import Adj, OptTensor
from torch_geometric.utils import add_self_loops as add_self_loops_fn
from torch_geometric.utils import is_sparse, is_torch_sparse_tensor, to_edge_index

from .edge_ops import EdgePattern, weighted_spmm

try:  # optional: torch-sparse's SparseTensor and its CPU kernels
    import torch_sparse
    from torch_sparse import SparseTensor
except ImportError:  # pragma: no cover - exercised by the subprocess test without torch-sparse
    torch_sparse = None
    SparseTensor = None

#: set to anything but ``""``/``"0"`` to act as if torch-sparse were not installed
NO_TORCH_SPARSE_ENV = "EMMKGR_NO_TORCH_SPARSE"
BACKENDS = ("auto", "torch_sparse", "torch")


def lightgcn_norm(
    edge_index: Tensor,
    num_nodes: int,
    edge_weight: OptTensor = None,
    add_self_loops: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""The normalised adjacency :math:`\tilde{A} = D^{-1/2} A D^{-1/2}` of a graph, as edges.

    One normalisation over the whole (union) graph, as Eq. 4 asks: :math:`D` counts every edge that
    ends at a node, whatever its relation. A node without incoming edges gets no messages.

    Args:
        edge_index: edges ``[2, E]`` (messages flow from ``edge_index[0]`` to ``edge_index[1]``).
        num_nodes: number of nodes.
        edge_weight: optional edge weights ``[E]`` (default: ones).
        add_self_loops: add :math:`I` to :math:`A` first (the authors' code does; the paper does not).

    Returns:
        ``(edge_index, edge_weight)`` of :math:`\tilde{A}`.
    """
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), device=edge_index.device)
    if add_self_loops:  # A + I, also where a node already has a loop
        edge_index, edge_weight = add_self_loops_fn(
            edge_index, edge_weight, fill_value=1.0, num_nodes=num_nodes
        )
    return gcn_norm(edge_index, edge_weight, num_nodes, improved=False, add_self_loops=False)


def sparse_adjacency(
    edge_index: Tensor, edge_weight: Tensor, num_nodes: int, backend: str = "auto"
) -> tuple[Adj, Adj]:
    """``(adj_t, adj)``: the adjacency in the layout ``propagate`` takes (row = target) and its
    transpose (for the backward pass), as ``SparseTensor`` or ``torch.sparse_csr`` tensors."""
    backend = resolve_backend(backend)
    row, col = edge_index
    if backend == "torch_sparse":
        adj_t = SparseTensor(row=col, col=row, value=edge_weight, sparse_sizes=(num_nodes, num_nodes))
        return adj_t, adj_t.t()
    size = (num_nodes, num_nodes)
    pair = []
    for r, c in ((col, row), (row, col)):
        coo = torch.sparse_coo_tensor(torch.stack([r, c]), edge_weight, size, check_invariants=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            pair.append(coo.coalesce().to_sparse_csr())
    return pair[0], pair[1]


def torch_sparse_available() -> bool:
    """Whether the ``"torch_sparse"`` backend can be used: torch-sparse imports and
    ``EMMKGR_NO_TORCH_SPARSE`` is unset or ``"0"``. The variable is read on every call (not at
    import), so a job or a test can switch the backend off without reimporting this module."""
    return torch_sparse is not None and os.environ.get(NO_TORCH_SPARSE_ENV, "") in ("", "0")


def resolve_backend(backend: str) -> str:
    """The backend that ``backend`` stands for (``"auto"`` is ``"torch"``), or a ``ValueError``."""
    if backend not in BACKENDS:
        raise ValueError(f"LightGCNConv: backend '{backend}' is not one of {BACKENDS}.")
    if backend == "auto":  # torch.sparse CSR with a cached transpose measured fastest on CPU
        return "torch"
    if backend == "torch_sparse" and not torch_sparse_available():
        raise ValueError(
            "LightGCNConv: backend 'torch_sparse' needs the torch-sparse package; install the "
            f"'sparse' extra (and leave {NO_TORCH_SPARSE_ENV} unset) or use backend='torch'."
        )
    return backend


class _CSRMatmul(torch.autograd.Function):
    """``adj_t @ x`` whose backward uses the precomputed transpose (no transpose per step)."""

    @staticmethod
    def forward(ctx, adj_t: Tensor, adj: Tensor, x: Tensor) -> Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj_t, x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, torch.sparse.mm(ctx.adj, grad)


def spmm_with_transpose(adj_t: Adj, adj: Adj | None, x: Tensor) -> Tensor:
    """One sparse matmul ``adj_t @ x`` for either backend; nothing is cached here.

    With ``torch.sparse`` and ``x`` requiring grad, the backward pass multiplies by ``adj`` (the
    transpose of ``adj_t``, built once by the caller, e.g. :func:`sparse_adjacency`) instead of
    transposing ``adj_t`` at every step. ``adj=None`` gives the plain ``torch.sparse.mm`` backward.
    ``SparseTensor`` inputs use torch-sparse's own matmul and ignore ``adj``.
    """
    if SparseTensor is not None and isinstance(adj_t, SparseTensor):
        return torch_sparse.matmul(adj_t, x)
    if adj is None or not x.requires_grad:
        return torch.sparse.mm(adj_t, x)
    return _CSRMatmul.apply(adj_t, adj, x)


class LightGCNConv(MessagePassing):
    r"""The LightGCN graph convolution of `"LightGCN: Simplifying and Powering Graph Convolution
    Network for Recommendation" <https://arxiv.org/abs/2002.02126>`_, over the union adjacency of a
    heterogeneous graph as E-MMKGR uses it (Eq. 3-4):

    .. math::
        \mathbf{H}^{(l)} = \tilde{\mathbf{A}} \mathbf{H}^{(l-1)}, \qquad
        \tilde{\mathbf{A}} = \mathbf{D}^{-1/2} \mathbf{A} \mathbf{D}^{-1/2}

    Use it like PyG's :class:`~torch_geometric.nn.conv.LGConv` (``conv(x, edge_index)``) on the
    homogeneous view of a ``HeteroData`` (one normalisation over the whole graph: per-relation
    normalisation, as ``HeteroConv``/``to_hetero`` would give, is another operator).

    What is kept, and when: each call builds the normalised adjacency :math:`\tilde{\mathbf{A}}` as
    one sparse matrix together with its transpose and hands both to :meth:`propagate` (the transpose
    makes the backward pass one sparse matmul, see :func:`spmm_with_transpose`); nothing of a call is
    left on the layer. Only with ``cached=True`` is the pair stored on the layer, on the first call,
    and reused by every later call whatever graph it is given, until :meth:`reset_parameters`.
    Edge weights that require grad are never cached: a call sorts the edges into a sparse pattern
    and multiplies with the weights as its values (:func:`~.edge_ops.weighted_spmm`, differentiable
    in the weights, no ``[E, F]`` message tensor); with ``cached=True`` only that pattern (the
    structure) is kept for later calls.
    Called directly, ``propagate(adj_t, x=x, edge_weight=None, transpose=...)`` takes the transpose
    of its own ``adj_t`` (or ``None``); nothing is read from an earlier call.

    Args:
        normalize (bool, optional): apply :math:`D^{-1/2} A D^{-1/2}` (default: :obj:`True`).
            With :obj:`False` the given weights are used as they are.
        add_self_loops (bool, optional): add self-loops before normalising
            (default: :obj:`False`, as the paper).
        cached (bool, optional): build the normalised adjacency on the first call and reuse it
            (default: :obj:`False`).
        backend (str, optional): ``"torch_sparse"`` (``SparseTensor``), ``"torch"``
            (``torch.sparse`` CSR) or ``"auto"`` (``"torch"``: with its cached transpose it measured
            3x faster than ``SparseTensor`` on CPU, see ``benchmarks/``) (default: ``"auto"``).
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)`,
          edge indices :math:`(2, |\mathcal{E}|)` or a sparse adjacency
          :math:`(|\mathcal{V}|, |\mathcal{V}|)` (``SparseTensor`` or ``torch.sparse``, row = target),
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F)`
    """

    def __init__(
        self,
        normalize: bool = True,
        add_self_loops: bool = False,
        cached: bool = False,
        backend: str = "auto",
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        if add_self_loops and not normalize:
            raise ValueError(
                "LightGCNConv: add_self_loops=True needs normalize=True (self-loops are added "
                "before normalising); pass a graph that already has them otherwise."
            )
        self.normalize = normalize
        self.add_self_loops = add_self_loops
        self.cached = cached
        self.backend = resolve_backend(backend)
        self._cached_adj: tuple[Adj, Adj] | None = None  # (adj_t, adj), only with cached=True
        self._cached_pattern: EdgePattern | None = None  # learned weights' structure, cached=True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self._cached_adj = None
        self._cached_pattern = None

    def forward(self, x: Tensor, edge_index: Adj, edge_weight: OptTensor = None) -> Tensor:
        if edge_weight is not None and is_sparse(edge_index):  # its values are the weights
            raise ValueError(
                "LightGCNConv: edge_weight was given with a sparse adjacency "
                f"({type(edge_index).__name__}); put the weights in the adjacency's values, "
                "or pass an edge_index tensor with edge_weight."
            )
        if edge_weight is not None and edge_weight.requires_grad:  # learned: values never cached
            ei, ew = self._normalized_edges(edge_index, edge_weight, x.size(0))
            pattern = self._cached_pattern
            if pattern is None:
                pattern = EdgePattern(ei, x.size(0))
                if self.cached:
                    self._cached_pattern = pattern
            return weighted_spmm(pattern, ew.to(x.dtype), x)
        adj_t, adj = self._adjacency(edge_index, edge_weight, x)
        return self.propagate(adj_t, x=x, edge_weight=None, transpose=adj)

    def _adjacency(self, edge_index: Adj, edge_weight: OptTensor, x: Tensor) -> tuple[Adj, Adj]:
        """``(adj_t, adj)`` of the normalised graph: the cached pair, or built (and cached when
        ``cached=True``)."""
        if self._cached_adj is not None:
            return self._cached_adj
        ei, ew = self._normalized_edges(edge_index, edge_weight, x.size(0))
        pair = sparse_adjacency(ei, ew.to(x.dtype), x.size(0), self.backend)
        if self.cached:
            self._cached_adj = pair
        return pair

    def _normalized_edges(
        self, edge_index: Adj, edge_weight: OptTensor, num_nodes: int
    ) -> tuple[Tensor, Tensor]:
        if SparseTensor is not None and isinstance(edge_index, SparseTensor):
            row, col, value = edge_index.coo()  # adj_t: row = target
            edge_index, edge_weight = torch.stack([col, row]), value
        elif is_torch_sparse_tensor(edge_index):
            if edge_index.layout == torch.sparse_coo:  # to_edge_index would flag the caller's tensor
                edge_index = edge_index.coalesce()
            (row, col), value = to_edge_index(edge_index)
            edge_index, edge_weight = torch.stack([col, row]), value
        if edge_weight is None:
            edge_weight = torch.ones(edge_index.size(1), device=edge_index.device)
        if not self.normalize:
            return edge_index, edge_weight
        return lightgcn_norm(edge_index, num_nodes, edge_weight, self.add_self_loops)

    def message(self, x_j: Tensor, edge_weight: OptTensor = None) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Adj, x: Tensor, transpose: Adj | None = None) -> Tensor:
        """``adj_t @ x``; ``transpose``, the transpose of ``adj_t`` when the caller has it built
        (``None`` otherwise), serves the backward pass."""
        return spmm_with_transpose(adj_t, transpose, x)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(normalize={self.normalize}, "
            f"add_self_loops={self.add_self_loops}, backend={self.backend})"
        )

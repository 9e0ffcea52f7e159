r"""Sparse products on a fixed graph whose edge values are learned: the weighted aggregation
:math:`\mathbf{y}_t = \sum_{e: s \to t} w_e \mathbf{x}_s` (:func:`weighted_spmm`) and the per-edge
inner product :math:`s_e = \mathbf{a}_t^\top \mathbf{b}_s` (:func:`edge_dot`), both differentiable
in every input.

PyG's message passing gathers ``x[src]`` into an ``[E, d]`` tensor, weighs it and scatters it back,
and its backward does the same again: at Office size (2 x 40,877 edges, d = 64) those ``[E, d]``
temporaries were most of a GRCN step. Here the structure is sorted once into CSR (and into the CSR
of its transpose) by :class:`EdgePattern`; a product then builds a CSR tensor from the current
values (an ``[E]`` scatter into the pattern's entries, the structure shared) and uses
``torch.sparse.mm``, and the gradient of the values is ``torch.sparse.sampled_addmm`` (SDDMM) on
the same pattern: no ``[E, d]`` tensor is materialised in either pass (10-14x faster forward +
backward at Office and Clothing sizes, ``benchmarks/edge_ops_speed.py``). Repeated edges share one
entry of the pattern (their values added) and each gets the entry's inner product back. First
derivatives only (no double backward). Why not ``torch.sparse.mm`` on a CSR tensor whose values
require grad: its own backward for the values took 40x longer at Office size (0.35 s against
9 ms); torch-sparse's ``SparseTensor`` matmul has a fused one, but that package is optional here.

Shapes: ``w`` and the result of :func:`edge_dot` are ``[E]`` in the order of the pattern's
``edge_index``; ``x`` is ``[n_src, d]``, the aggregation ``[n_dst, d]``; ``a`` ``[n_dst, d]``,
``b`` ``[n_src, d]``.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


def _csr(dst: Tensor, src: Tensor, n_dst: int, n_src: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(crow, col, slot)``: the distinct ``(dst, src)`` pairs as CSR rows (sorted), ``slot[e]``
    the entry edge ``e`` falls on (repeated edges share one entry: sparse kernels want it so)."""
    width = max(n_src, 1)
    key, slot = torch.unique(dst * width + src, sorted=True, return_inverse=True)
    crow = torch.ops.aten._convert_indices_from_coo_to_csr(key // width, n_dst)
    return crow, key % width, slot


class EdgePattern:
    """The fixed structure of a graph of ``E`` edges ``src -> dst`` (``edge_index = [src; dst]``,
    PyG's order) between ``n_src`` source and ``n_dst`` target nodes, as CSR in both directions.

    :meth:`t` is the reversed graph (``dst -> src``) with the same edge order, so that one value
    per edge serves both directions (e.g. an interaction's score, softmaxed over either end).
    Repeated edges are allowed (their products add up).
    """

    def __init__(self, edge_index: Tensor, n_src: int, n_dst: int | None = None) -> None:
        n_dst = n_src if n_dst is None else n_dst
        src, dst = edge_index[0].long(), edge_index[1].long()
        self.n_src, self.n_dst, self.num_edges = int(n_src), int(n_dst), src.numel()
        self._fwd = _csr(dst, src, self.n_dst, self.n_src)  # rows: targets
        self._bwd = _csr(src, dst, self.n_src, self.n_dst)  # rows: sources

    def t(self) -> EdgePattern:
        """The reversed graph (edges ``dst -> src``), sharing this one's arrays."""
        rev = EdgePattern.__new__(EdgePattern)
        rev.n_src, rev.n_dst, rev.num_edges = self.n_dst, self.n_src, self.num_edges
        rev._fwd, rev._bwd = self._bwd, self._fwd
        return rev

    def matrix(self, values: Tensor, transpose: bool = False) -> Tensor:
        """The ``[n_dst, n_src]`` CSR matrix with ``values`` (``[E]``, edge order) as entries,
        repeated edges added up (``[n_src, n_dst]``, the transpose, with ``transpose=True``).
        Not differentiable itself: the products below carry the gradients."""
        crow, col, slot = self._bwd if transpose else self._fwd
        size = (self.n_src, self.n_dst) if transpose else (self.n_dst, self.n_src)
        entries = values.new_zeros(col.numel()).index_add_(0, slot, values.detach())
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(crow, col, entries, size, check_invariants=False)

    def sddmm(self, a: Tensor, b: Tensor, transpose: bool = False) -> Tensor:
        """``[E]`` (edge order): :math:`\\mathbf{a}_{dst}^\\top \\mathbf{b}_{src}` per edge
        (``a`` rows: targets, ``b`` rows: sources; swapped with ``transpose=True``)."""
        crow, col, slot = self._bwd if transpose else self._fwd
        size = (self.n_src, self.n_dst) if transpose else (self.n_dst, self.n_src)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            pattern = torch.sparse_csr_tensor(
                crow, col, a.new_zeros(col.numel()), size, check_invariants=False
            )
            entries = torch.sparse.sampled_addmm(pattern, a.detach(), b.detach().t(), beta=0.0).values()
        return entries[slot]


class _WeightedSpmm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pattern: EdgePattern, w: Tensor, x: Tensor) -> Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(w, x)
        return torch.sparse.mm(pattern.matrix(w), x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        pattern = ctx.pattern
        w, x = ctx.saved_tensors
        grad = grad.contiguous()
        grad_w = pattern.sddmm(grad, x) if ctx.needs_input_grad[1] else None
        grad_x = torch.sparse.mm(pattern.matrix(w, transpose=True), grad) if ctx.needs_input_grad[2] else None
        return None, grad_w, grad_x


class _EdgeDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pattern: EdgePattern, a: Tensor, b: Tensor) -> Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(a, b)
        return pattern.sddmm(a, b)

    @staticmethod
    def backward(ctx, grad: Tensor):
        pattern = ctx.pattern
        a, b = ctx.saved_tensors
        grad_a = torch.sparse.mm(pattern.matrix(grad), b) if ctx.needs_input_grad[1] else None
        grad_b = torch.sparse.mm(pattern.matrix(grad, transpose=True), a) if ctx.needs_input_grad[2] else None
        return None, grad_a, grad_b


def weighted_spmm(pattern: EdgePattern, w: Tensor, x: Tensor) -> Tensor:
    r""":math:`\mathbf{y}_t = \sum_{e: s \to t} w_e \mathbf{x}_s`, ``[n_dst, d]``, differentiable
    in ``w`` and ``x``."""
    _check(pattern, w, x.size(0), pattern.n_src, "x")
    return _WeightedSpmm.apply(pattern, w, x.contiguous())


def edge_dot(pattern: EdgePattern, a: Tensor, b: Tensor) -> Tensor:
    r""":math:`s_e = \mathbf{a}_t^\top \mathbf{b}_s` for every edge :math:`e: s \to t`, ``[E]``,
    differentiable in ``a`` and ``b``."""
    _check(pattern, None, a.size(0), pattern.n_dst, "a")
    _check(pattern, None, b.size(0), pattern.n_src, "b")
    return _EdgeDot.apply(pattern, a.contiguous(), b.contiguous())


def _check(pattern: EdgePattern, w: Tensor | None, rows: int, expected: int, name: str) -> None:
    if w is not None and w.shape != (pattern.num_edges,):
        raise ValueError(f"edge_ops: {pattern.num_edges} edges but edge values of shape {tuple(w.shape)}.")
    if rows != expected:
        raise ValueError(f"edge_ops: '{name}' has {rows} rows; the pattern has {expected} such nodes.")

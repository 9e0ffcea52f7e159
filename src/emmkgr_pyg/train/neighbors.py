"""Neighbour samplers of sampled training: L-hop neighbourhoods of seed nodes as subgraphs.

Both give a :class:`~torch_geometric.data.Data` with ``n_id`` (global ids, the seeds first, in
their order), ``batch_size`` (the number of seeds), a local ``edge_index`` (messages flow from row 0
to row 1) and ``edge_weight``: the FULL graph's :math:`D^{-1/2} A D^{-1/2}` entries, scaled so that
a target's weighted sum over its sampled in-edges estimates the full sum without bias.

- :class:`PyGNeighborSampler` (``train.sampler=pyg``): PyG's
  :class:`~torch_geometric.loader.NeighborLoader` (pyg-lib or torch-sparse), neighbours drawn
  without replacement, a target's sampled edges scaled by full / sampled in-degree.
- :class:`UniformNeighborSampler` (``train.sampler=torch``): the same subgraphs drawn with
  vectorised torch operations: a target with more than ``k`` in-edges gets ``k`` drawn uniformly
  with replacement, each scaled by degree / ``k``; the others keep all theirs. torch-sparse's
  sampler draws every neighbour with its own ``torch.randint`` call (65% of a sampled step at the
  default's size, measured with torch.profiler), this one draws a hop at once.
- ``auto``: ``pyg`` when pyg-lib is installed, else ``torch``.

With fan-out ``-1`` (all neighbours) both give the exact subgraph.
"""

from __future__ import annotations

import importlib.util
import warnings

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..nn.conv import lightgcn_norm

SAMPLERS = ("auto", "pyg", "torch")


def require_sampling_backend() -> None:
    """PyG's neighbour samplers run on pyg-lib or torch-sparse; say which to install otherwise."""
    if not any(importlib.util.find_spec(m) for m in ("pyg_lib", "torch_sparse")):
        raise ImportError(
            "train.propagation=sampled: PyG's NeighborLoader needs pyg-lib or torch-sparse; install "
            "the 'sparse' extra (pip install 'emmkgr-pyg[sparse]', wheels in ../shared/wheels) or "
            "set train.sampler=torch."
        )


def hop_fanouts(fanout: int | list[int] | tuple[int, ...], num_layers: int) -> list[int]:
    """Neighbours per hop: one number for every hop, or one per hop (``-1`` = all)."""
    hops = [int(fanout)] * num_layers if isinstance(fanout, int) else [int(f) for f in fanout]
    if len(hops) != num_layers or any(f == 0 or f < -1 for f in hops):
        raise ValueError(
            f"SampledTrainer: fanout {fanout} must be one positive number (or -1 = all) or one per "
            f"hop ({num_layers} hops)."
        )
    return hops


class PyGNeighborSampler:
    """L-hop neighbourhoods of seed nodes in one graph, as subgraphs whose ``edge_weight`` are the
    full graph's normalised entries, rescaled per target by full / sampled in-degree.

    Args:
        edge_index: the full graph's edges ``[2, E]`` (messages flow from row 0 to row 1).
        num_nodes: its number of nodes.
        fanouts: neighbours kept per node at each hop (``-1`` = all).
        add_self_loops: normalise :math:`A + I`, as the layer the model uses does.
    """

    def __init__(
        self, edge_index: Tensor, num_nodes: int, fanouts: list[int], add_self_loops: bool = False
    ) -> None:
        from torch_geometric.loader import NeighborLoader

        require_sampling_backend()
        ei, ew = lightgcn_norm(edge_index, num_nodes, add_self_loops=add_self_loops)
        self.in_degree = torch.bincount(ei[1], minlength=num_nodes).float()
        self.full = all(f == -1 for f in fanouts)
        data = Data(edge_index=ei, edge_weight=ew, num_nodes=num_nodes)
        with warnings.catch_warnings():  # torch-sparse's sampler is deprecated in favour of pyg-lib
            warnings.filterwarnings("ignore", message=".*without a 'pyg-lib' installation")
            self.loader = NeighborLoader(data, num_neighbors=fanouts, batch_size=1)

    def __call__(self, seeds: Tensor) -> Data:
        """The subgraph around ``seeds`` (unique global ids); its first nodes are the seeds."""
        sub = self.loader(seeds)
        if not self.full:
            sampled = torch.bincount(sub.edge_index[1], minlength=sub.num_nodes).float()
            scale = self.in_degree[sub.n_id] / sampled.clamp(min=1)
            sub.edge_weight = sub.edge_weight * scale[sub.edge_index[1]]
        return sub


class UniformNeighborSampler:
    """L-hop neighbourhoods drawn with vectorised torch operations (see the module); same
    arguments as :class:`PyGNeighborSampler`; ``generator`` makes the draws repeatable."""

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        fanouts: list[int],
        add_self_loops: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        ei, ew = lightgcn_norm(edge_index, num_nodes, add_self_loops=add_self_loops)
        order = torch.argsort(ei[1], stable=True)  # CSC: in-edges of a target are contiguous
        self.source, self.weight = ei[0, order], ew[order]
        self.in_degree = torch.bincount(ei[1], minlength=num_nodes)
        self.colptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        torch.cumsum(self.in_degree, 0, out=self.colptr[1:])
        self.fanouts, self.num_nodes, self.generator = fanouts, num_nodes, generator
        self.local = torch.full((num_nodes,), -1, dtype=torch.long)  # global -> local, reset per call

    def _hop(self, targets: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """In-edges of ``targets``: (edge positions in CSC order, their target, their scale)."""
        deg = self.in_degree[targets]
        drawn = deg > k if k != -1 else torch.zeros_like(deg, dtype=torch.bool)
        take = torch.where(drawn, torch.full_like(deg, k), deg)
        tgt = torch.repeat_interleave(targets, take)
        start = torch.repeat_interleave(self.colptr[targets], take)
        offsets = torch.arange(tgt.numel()) - torch.repeat_interleave(torch.cumsum(take, 0) - take, take)
        scale = torch.ones(tgt.numel())
        if bool(drawn.any()):  # k of the in-edges, uniformly with replacement, each worth deg / k
            d = torch.repeat_interleave(deg, take)
            edge_drawn = torch.repeat_interleave(drawn, take)
            rand = (torch.rand(tgt.numel(), generator=self.generator) * d).long().clamp_(max=d.max() - 1)
            offsets = torch.where(edge_drawn, torch.minimum(rand, d - 1), offsets)
            scale = torch.where(edge_drawn, d.float() / k, scale)
        return start + offsets, tgt, scale

    def __call__(self, seeds: Tensor) -> Data:
        """The subgraph around ``seeds`` (unique global ids); its first nodes are the seeds."""
        nodes, frontier = [seeds], seeds
        self.local[seeds] = torch.arange(seeds.numel())
        count = seeds.numel()
        src, dst, weight = [], [], []
        for k in self.fanouts:
            if frontier.numel() == 0:
                break
            pos, tgt, scale = self._hop(frontier, k)
            s = self.source[pos]
            new = torch.unique(s[self.local[s] < 0])
            self.local[new] = torch.arange(count, count + new.numel())
            count += new.numel()
            nodes.append(new)
            src.append(self.local[s])
            dst.append(self.local[tgt])
            weight.append(self.weight[pos] * scale)
            frontier = new
        n_id = torch.cat(nodes)
        self.local[n_id] = -1
        empty = torch.empty(0, dtype=torch.long)
        edge_index = torch.stack([torch.cat(src) if src else empty, torch.cat(dst) if dst else empty])
        edge_weight = torch.cat(weight) if weight else torch.empty(0)
        return Data(
            edge_index=edge_index,
            edge_weight=edge_weight,
            n_id=n_id,
            num_nodes=n_id.numel(),
            batch_size=seeds.numel(),
        )


def make_neighbor_sampler(
    kind: str, edge_index: Tensor, num_nodes: int, fanouts: list[int], add_self_loops: bool = False
) -> PyGNeighborSampler | UniformNeighborSampler:
    """The sampler ``train.sampler`` names (``auto``: pyg with pyg-lib, else torch)."""
    if kind not in SAMPLERS:
        raise ValueError(f"train.sampler: '{kind}' is not one of {SAMPLERS}.")
    if kind == "auto":
        kind = "pyg" if importlib.util.find_spec("pyg_lib") else "torch"
    cls = PyGNeighborSampler if kind == "pyg" else UniformNeighborSampler
    return cls(edge_index, num_nodes, fanouts, add_self_loops=add_self_loops)

"""Mini-batch training whose steps propagate only over the batch's sampled L-hop neighbourhood.

``train.propagation=sampled`` (``train.fanout``: neighbours kept per node and hop, ``-1`` = all)
trains with :class:`SampledTrainer`: each step samples, with PyG's
:class:`~torch_geometric.loader.NeighborLoader`, the neighbourhood of the batch's users and items
on the user-item graph, and of the batch's items and KG triples' nodes on the E-MMKG, and
propagates over those subgraphs only (:mod:`emmkgr_pyg.nn.sampled`). Validation, test and the
exported embeddings still use one full pass (under ``no_grad``).
"""

from __future__ import annotations

import importlib.util
import warnings

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..graph.interaction import InteractionGraph
from ..graph.triples import KGView
from ..nn.conv import lightgcn_norm
from ..nn.recommender import EMMKGR, KGBatch, Recommender
from ..nn.sampled import interaction_model, sampled_embeddings
from .trainer import Trainer

PROPAGATIONS = ("full", "sampled")


def require_sampling_backend() -> None:
    """PyG's neighbour samplers run on pyg-lib or torch-sparse; say which to install otherwise."""
    if not any(importlib.util.find_spec(m) for m in ("pyg_lib", "torch_sparse")):
        raise ImportError(
            "train.propagation=sampled: PyG's NeighborLoader needs pyg-lib or torch-sparse; install "
            "the 'sparse' extra (pip install 'emmkgr-pyg[sparse]', wheels in ../shared/wheels) or "
            "set train.propagation=full."
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


class NeighborhoodSampler:
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


def local_ids(seeds: Tensor, ids: Tensor) -> Tensor:
    """Positions in ``seeds`` (unique, any order) of ``ids`` (each one of ``seeds``)."""
    ordered, order = seeds.sort()
    return order[torch.searchsorted(ordered, ids)]


def seeds_after(first: Tensor, ids: Tensor) -> Tensor:
    """``first`` followed by the other unique values of ``ids``."""
    rest = torch.unique(ids)
    return torch.cat([first, rest[~torch.isin(rest, first)]])


def trainer_class(propagation: str) -> type[Trainer]:
    """The trainer of ``train.propagation``."""
    if propagation not in PROPAGATIONS:
        raise ValueError(f"train.propagation: '{propagation}' is not one of {PROPAGATIONS}.")
    return SampledTrainer if propagation == "sampled" else Trainer


class SampledTrainer(Trainer):
    """:class:`Trainer` whose steps propagate over sampled neighbourhoods (see the module);
    supports :class:`~emmkgr_pyg.nn.LightGCN` and :class:`~emmkgr_pyg.nn.EMMKGR`
    (``item_graph_layers=0``), both schedules. Same arguments as :class:`Trainer`."""

    def __init__(
        self,
        model: Recommender,
        inter: InteractionGraph,
        valid,
        test,
        config,
        kg: KGView | None = None,
        out_dir=None,
    ) -> None:
        super().__init__(model, inter, valid, test, config, kg=kg, out_dir=out_dir)
        cf = interaction_model(model)
        self.n_users = inter.n_users
        self.inter_sampler = NeighborhoodSampler(
            inter.edge_index(), inter.num_nodes, hop_fanouts(config.fanout, cf.num_layers)
        )
        self.kg_sampler = None
        if isinstance(model, EMMKGR):
            enc = model.encoder
            self.kg_sampler = NeighborhoodSampler(
                enc.view.edge_index,
                enc.view.num_nodes,
                hop_fanouts(config.fanout, enc.num_layers),
                add_self_loops=enc.conv.add_self_loops,
            )

    def batch_losses(
        self, users: Tensor | None, pos: Tensor | None, neg: Tensor | None, kg: KGBatch | None
    ) -> dict[str, Tensor]:
        """BPR (+ L2) of an interaction batch and/or KG loss of a KG batch, over sampled subgraphs."""
        items = torch.unique(torch.cat([pos, neg])) if users is not None else torch.empty(0, dtype=torch.long)
        inter_sub = kg_sub = None
        if users is not None:
            u = torch.unique(users)
            inter_sub = self.inter_sampler(torch.cat([u, items + self.n_users]))
        if self.kg_sampler is not None:
            kg_ids = (
                [items]
                if kg is None
                else [items, kg.head, kg.tail, kg.neg_head.view(-1), kg.neg_tail.view(-1)]
            )
            kg_sub = self.kg_sampler(seeds_after(items, torch.cat(kg_ids)))
        emb = sampled_embeddings(self.model, inter_sub, kg_sub)
        losses: dict[str, Tensor] = {}
        if users is not None:
            lu, lp, ln = local_ids(u, users), local_ids(items, pos), local_ids(items, neg)
            diff = (emb.user[lu] * (emb.item[lp] - emb.item[ln])).sum(-1)
            losses["bpr"] = -torch.nn.functional.logsigmoid(diff).mean()
            ego = self.model.ego_embeddings(users, pos, neg)
            if ego and self.model.reg_weight:
                sq = sum(e.pow(2).sum() for e in ego)
                losses["reg"] = self.model.reg_weight * 0.5 * sq / users.size(0)
        if kg is not None:
            seeds = kg_sub.n_id[: kg_sub.batch_size]
            local = KGBatch(
                local_ids(seeds, kg.head),
                kg.rel,
                local_ids(seeds, kg.tail),
                local_ids(seeds, kg.neg_head),
                local_ids(seeds, kg.neg_tail),
            )
            kg_losses = self.model.kg_losses(emb, local)
            losses.update({k: self.cfg.lambda_kg * v for k, v in kg_losses.items()})
        return losses

    def train_epoch(self) -> dict[str, float]:
        """One epoch of sampled steps; returns the mean of every loss term."""
        self.model.train()
        self.model.on_epoch_start()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}

        def step(optimizer, losses):
            self._step(optimizer, losses, sums)
            for k in losses:
                counts[k] = counts.get(k, 0) + 1

        if self.use_kg and self.kg_optimizer is not None:
            for batch in self.kg:
                step(self.kg_optimizer, self.batch_losses(None, None, None, batch))
        kg_batches = self.kg.cycle() if self.use_kg and self.kg_optimizer is None else None
        for users, pos, neg in self.bpr:
            kg = next(kg_batches) if kg_batches is not None else None
            step(self.optimizer, self.batch_losses(users, pos, neg, kg))
        return {k: v / counts[k] for k, v in sums.items()}

"""Mini-batch training whose steps propagate only over the batch's sampled L-hop neighbourhood.

``train.propagation=sampled`` (``train.fanout``: neighbours kept per node and hop, ``-1`` = all)
trains with :class:`SampledTrainer`: each step samples, with PyG's
:class:`~torch_geometric.loader.NeighborLoader`, the neighbourhood of the batch's users and items
on the user-item graph, and of the batch's items and KG triples' nodes on the E-MMKG (or with
the vectorised sampler of :mod:`.neighbors`, ``train.sampler``), and
propagates over those subgraphs only (:mod:`emmkgr_pyg.nn.sampled`). Validation, test and the
exported embeddings still use one full pass (under ``no_grad``). The ID tables are read row by row,
so ``train.optimizer=auto`` updates them sparsely (:mod:`.optim`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..graph.interaction import InteractionGraph
from ..graph.triples import KGView
from ..nn.blocks import embedding_reg
from ..nn.emmkgr import EMMKGR
from ..nn.recommender import KGBatch, Recommender
from ..nn.sampled import interaction_model, sampled_embeddings
from .neighbors import hop_fanouts, make_neighbor_sampler
from .trainer import Trainer, to_device

PROPAGATIONS = ("full", "sampled")


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
        parallel=None,
    ) -> None:
        super().__init__(model, inter, valid, test, config, kg=kg, out_dir=out_dir, parallel=parallel)
        if self.parallel.enabled:
            raise ValueError(
                "SampledTrainer: sampled propagation trains in one process; run it without torchrun "
                "or set train.propagation=full."
            )
        cf = interaction_model(model)
        self.n_users = inter.n_users
        self.inter_sampler = make_neighbor_sampler(
            config.sampler, inter.edge_index(), inter.num_nodes, hop_fanouts(config.fanout, cf.num_layers)
        )
        #: nodes of the sampled subgraphs summed over steps (``steps``: how many), to see what a
        #: step costs: ``{"steps": n, "inter": nodes, "kg": nodes}``
        self.sampled_nodes = {"steps": 0, "inter": 0, "kg": 0}
        self.kg_sampler = None
        if isinstance(model, EMMKGR):
            enc = model.encoder
            self.kg_sampler = make_neighbor_sampler(
                config.sampler,
                enc.view.edge_index,
                enc.view.num_nodes,
                hop_fanouts(config.fanout, enc.num_layers),
                add_self_loops=enc.conv.add_self_loops,
            )

    def batch_losses(
        self, users: Tensor | None, pos: Tensor | None, neg: Tensor | None, kg: KGBatch | None
    ) -> dict[str, Tensor]:
        """The ranking loss (+ L2) of an interaction batch and/or the KG loss of a KG batch, over
        sampled subgraphs."""
        items = torch.empty(0, dtype=torch.long)
        if users is not None:  # negatives [B] or [B, K]
            items = torch.unique(torch.cat([pos, neg.reshape(-1)]))
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
        self.sampled_nodes["steps"] += 1
        for name, sub in (("inter", inter_sub), ("kg", kg_sub)):
            self.sampled_nodes[name] += 0 if sub is None else int(sub.n_id.numel())
        inter_sub, kg_sub = (None if g is None else g.to(self.device) for g in (inter_sub, kg_sub))
        emb = sampled_embeddings(self.model, inter_sub, kg_sub)
        losses: dict[str, Tensor] = {}
        if users is not None:
            lu, lp, ln = to_device(
                (local_ids(u, users), local_ids(items, pos), local_ids(items, neg)), self.device
            )
            users, pos, neg = to_device((users, pos, neg), self.device)
            losses[self.model.rec_loss] = self.model.pair_loss(emb.user[lu], emb.item[lp], emb.item[ln])
            ego = self.model.ego_embeddings(users, pos, neg)
            if ego and self.model.reg_weight:
                reg = embedding_reg(ego, users.size(0), self.model.reg_form)
                losses["reg"] = self.model.reg_weight * reg
        if kg is not None:
            seeds = kg_sub.n_id[: kg_sub.batch_size]
            local = KGBatch(
                local_ids(seeds, kg.head),
                kg.rel,
                local_ids(seeds, kg.tail),
                local_ids(seeds, kg.neg_head),
                local_ids(seeds, kg.neg_tail),
            )
            kg_losses = self.model.kg_losses(emb, to_device(local, self.device))
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

r"""Recommenders: the shared interface and LightGCN (E-MMKGR, paper section 3.3: :mod:`.emmkgr`).

A recommender computes all embeddings in one pass (:meth:`Recommender.embed`), scores users
against every item (:meth:`Recommender.score`) and returns its losses as named terms, so that the
trainer can report them and name the one that is not finite. Models are built from the training
interaction graph and, when :attr:`Recommender.needs_features`, the E-MMKG.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.interaction import InteractionGraph
from .blocks import (
    REG_FORMS,
    IDEmbedding,
    PrunedInteractions,
    bpr_loss,
    check_rec_loss,
    embedding_reg,
    id_layer_mean,
    softmax_loss,
)
from .conv import LightGCNConv
from .score_prior import InteractionPrior, NeighbourhoodPrior, zscore_rows

#: keys of :meth:`Recommender.export_embeddings` (a run saves them as ``embeddings.pt``;
#: :mod:`emmkgr_pyg.runs.artifacts` re-exports them): H_item, the users, E-MMKGR's H^MM item rows
ITEM, USER, MM_ITEM = "item", "user", "H_mm_item"


@dataclass
class Embeddings:
    """The output of one forward pass: user and item representations, plus model extras."""

    user: Tensor | None
    item: Tensor | None
    extra: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class KGBatch:
    """Triples with their corruptions: ``head``, ``rel``, ``tail`` ``[B]``; ``neg_head``,
    ``neg_tail`` ``[B, K]`` (a row corrupts either its head or its tail; the other is repeated)."""

    head: Tensor
    rel: Tensor
    tail: Tensor
    neg_head: Tensor
    neg_tail: Tensor


class Recommender(torch.nn.Module):
    """Base class of every recommender trained by :class:`emmkgr_pyg.train.Trainer`."""

    #: reads modality features from the E-MMKG (a run builds the graph's modality nodes only then)
    needs_features: bool = False
    #: propagates over the E-MMKG's modal-modal (kNN) edges (a run builds them only then)
    needs_modal_edges: bool = False
    #: trains a knowledge-graph loss (:meth:`kg_losses`; the trainer draws KG batches only then)
    has_kg_loss: bool = False
    #: the loss of a user against a positive and its negatives (:meth:`pair_loss`), named in the
    #: losses by its form; the trainer sets both from ``train.rec_loss`` (:meth:`set_rec_loss`)
    rec_loss: str = "bpr"
    rec_temperature: float = 1.0
    #: weight of the neighbourhood prior fused into :meth:`score` (:meth:`set_score_prior`)
    score_prior_weight: float = 0.0
    #: weight of the interaction prior fused into :meth:`score` (:meth:`set_score_prior`)
    interaction_prior_weight: float = 0.0

    def __init__(self, inter: InteractionGraph, reg_weight: float = 1e-4, reg_form: str = "mmrec") -> None:
        super().__init__()
        if reg_form not in REG_FORMS:
            raise ValueError(f"{type(self).__name__}: reg_form '{reg_form}' is not one of {REG_FORMS}.")
        self.n_users, self.n_items = inter.n_users, inter.n_items
        self.reg_weight, self.reg_form = reg_weight, reg_form
        self.score_prior: NeighbourhoodPrior | None = None
        self.interaction_prior: InteractionPrior | None = None

    def set_rec_loss(self, form: str = "bpr", temperature: float = 1.0) -> None:
        """Train with ``form`` (``bpr`` or ``softmax`` at ``temperature``, see :meth:`pair_loss`)."""
        check_rec_loss(form, temperature)
        self.rec_loss, self.rec_temperature = form, float(temperature)

    def set_score_prior(
        self, weight: float, inter: InteractionGraph | None = None, interaction_weight: float = 0.0
    ) -> None:
        """Score with the priors of :mod:`.score_prior`: the neighbourhood prior at ``weight`` and
        the interaction prior at ``interaction_weight`` (both 0: the embedding score alone). The
        first non-zero weight of each builds it from the training interactions ``inter`` (and
        :meth:`item_neighbors`); a model without an item-item graph refuses a neighbourhood prior."""
        for name, value in (("score prior", weight), ("interaction prior", interaction_weight)):
            if not value >= 0:
                raise ValueError(f"{type(self).__name__}: a {name} weight must be >= 0, got {value}.")
        device = next(itertools.chain(self.parameters(), self.buffers()), torch.empty(0)).device
        if weight and self.score_prior is None:
            graph = self.item_neighbors()
            if graph is None or inter is None:
                raise ValueError(
                    f"{type(self).__name__} has no item-item graph for train.score_prior (E-MMKGR's "
                    "item_graph/authors fusions and FREEDOM have one); set train.score_prior=null."
                )
            self.score_prior = NeighbourhoodPrior(inter, *graph).to(device)
        if interaction_weight and self.interaction_prior is None:
            if inter is None:
                raise ValueError(f"{type(self).__name__}: the interaction prior needs the interactions.")
            self.interaction_prior = InteractionPrior(inter).to(device)
        self.score_prior_weight, self.interaction_prior_weight = float(weight), float(interaction_weight)

    def pair_loss(self, user: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        """The loss of users ``[B, d]`` against their positives ``[B, d]`` and negatives ``[B, d]``
        or ``[B, K, d]``: :func:`~emmkgr_pyg.nn.blocks.bpr_loss` (the paper's) or the sampled
        :func:`~emmkgr_pyg.nn.blocks.softmax_loss`, as :meth:`set_rec_loss` chose."""
        if self.rec_loss == "softmax":
            return softmax_loss(user, pos, neg, self.rec_temperature)
        return bpr_loss(user, pos, neg)

    def on_epoch_start(self) -> None:
        """Called by the trainer before every training epoch (e.g. to redraw a sampled graph)."""

    def item_neighbors(self) -> tuple[Tensor, Tensor | None] | None:
        """The model's frozen item-item graph, ``(edge_index, edge_weight)`` with edges from a
        neighbour to the item that lists it, from which ``train.hard_negatives`` are drawn; or
        ``None`` when it has none (the default)."""
        return None

    def embed(self) -> Embeddings:
        raise NotImplementedError

    def score(self, emb: Embeddings, users: Tensor) -> Tensor:
        """Scores ``[B, n_items]`` of ``users`` against every item: the embeddings' inner products,
        or, with :meth:`set_score_prior`, their per-user z-scores plus each prior's times its weight."""
        weight, inter_weight = self.score_prior_weight, self.interaction_prior_weight
        if not (weight or inter_weight):
            return self.embedding_scores(emb, users)
        parts = self.score_parts(emb, users, prior=bool(weight), interaction=bool(inter_weight))
        return self.fuse_scores(parts, weight, inter_weight)

    def embedding_scores(self, emb: Embeddings, users: Tensor) -> Tensor:
        """The embeddings' scores ``[B, n_items]`` of ``users``, inner products (a model that scores
        otherwise overrides this, and :meth:`score` and the priors fuse with its scores)."""
        return emb.user[users] @ emb.item.t()

    def score_parts(
        self, emb: Embeddings, users: Tensor, prior: bool = True, interaction: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """What :meth:`fuse_scores` combines, for ``users``: the embedding scores, their per-user
        z-scores, and the z-scores of the neighbourhood and interaction priors (``None`` where not
        asked for or not built by :meth:`set_score_prior`)."""
        scores = self.embedding_scores(emb, users)
        users = users.to(scores.device)
        p = zscore_rows(self.score_prior(users)) if prior and self.score_prior is not None else None
        q = None
        if interaction and self.interaction_prior is not None:
            q = zscore_rows(self.interaction_prior(users))
        return scores, zscore_rows(scores), p, q

    @staticmethod
    def fuse_scores(
        parts: tuple[Tensor, Tensor, Tensor | None, Tensor | None], weight: float, inter_weight: float
    ) -> Tensor:
        """:meth:`score` at the prior weights ``weight`` and ``inter_weight`` from
        :meth:`score_parts` (so that several weights can share one computation of the parts)."""
        scores, z, p, q = parts
        if not (weight or inter_weight):
            return scores
        if weight:
            z = z + weight * p
        if inter_weight:
            z = z + inter_weight * q
        return z

    def ego_embeddings(self, users: Tensor, pos: Tensor, neg: Tensor) -> list[Tensor]:
        """The layer-0 parameters of a batch, regularised by the default :meth:`rec_losses`."""
        return []

    def rec_losses(self, emb: Embeddings, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        r"""The recommendation losses of a batch of users, positive and negative items, as named
        terms that the trainer adds up (and adds the KG terms of :meth:`kg_losses` to).

        By default: ``bpr``, BPR (Eq. 6, :func:`~emmkgr_pyg.nn.blocks.bpr_loss`) on the scored
        embeddings (or the term :meth:`set_rec_loss` chose, under its name), and ``reg``, the L2
        term of LightGCN on the batch's layer-0 embeddings (:meth:`ego_embeddings`; ``reg_weight``
        times :func:`~emmkgr_pyg.nn.blocks.embedding_reg` of them in the form ``reg_form``, by
        default MMRec's sum of norms / B). A model with other recommendation objectives returns its
        own terms (BM3: ``rec``, ``align``, ``mask``, ``reg``, and it ignores ``neg``)."""
        losses = {self.rec_loss: self.pair_loss(emb.user[users], emb.item[pos], emb.item[neg])}
        ego = self.ego_embeddings(users, pos, neg)
        if ego and self.reg_weight:
            losses["reg"] = self.reg_weight * embedding_reg(ego, users.size(0), self.reg_form)
        return losses

    def kg_losses(self, emb: Embeddings, batch: KGBatch) -> dict[str, Tensor]:
        """Knowledge-graph loss terms (none for models without a KG)."""
        return {}

    def embed_kg(self) -> Embeddings:
        """The pass the KG loss needs alone (the alternating schedule); default: everything."""
        return self.embed()

    def kg_distance(self, emb: Embeddings, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        """The KG distance of triples given as global E-MMKG ids that broadcast against each other
        (what link prediction ranks; only models with a KG loss have one)."""
        raise NotImplementedError(f"{type(self).__name__} has no knowledge-graph score.")

    def export_embeddings(self, emb: Embeddings) -> dict[str, Tensor]:
        """What a trained run saves for search and analysis (``item`` always)."""
        return {ITEM: emb.item, USER: emb.user}


class LightGCN(Recommender):
    r"""LightGCN (He et al., SIGIR 2020) on the user-item graph, with :class:`LightGCNConv`:

    .. math::
        \mathbf{H}^{IN} = \frac{1}{L+1} \sum_{l=0}^{L} \tilde{\mathbf{A}}^{l}
        [\mathbf{E}^{u}; \mathbf{E}^{i}]

    Args:
        inter: the training interaction graph.
        kg: unused (accepted so that every model has one signature).
        dim: embedding size (default ``64``).
        num_layers: :math:`L` (default ``2``).
        reg_weight: L2 weight on the batch's layer-0 embeddings (default ``1e-4``).
        reg_form: the L2 term's form, ``"mmrec"`` or ``"squared"``
            (:func:`~emmkgr_pyg.nn.blocks.embedding_reg`; default ``"mmrec"``).
        backend: sparse backend (default ``"auto"``).
        prune_ratio: FREEDOM's denoising: each training epoch propagates over the user-item graph
            less this fraction of its edges, drawn by
            :func:`~emmkgr_pyg.graph.interaction.degree_sensitive_prune` (edges between popular
            nodes go first); evaluation uses the whole graph (default ``0``: no pruning).
    """

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData | None = None,
        dim: int = 64,
        num_layers: int = 2,
        reg_weight: float = 1e-4,
        backend: str = "auto",
        reg_form: str = "mmrec",
        prune_ratio: float = 0.0,
    ) -> None:
        super().__init__(inter, reg_weight, reg_form)
        if not 0.0 <= prune_ratio < 1.0:
            raise ValueError(f"{type(self).__name__}: prune_ratio must be in [0, 1), got {prune_ratio}.")
        self.dim, self.num_layers, self.prune_ratio = dim, num_layers, prune_ratio
        self.ids = IDEmbedding(self.n_users, self.n_items, dim)
        self.register_buffer("edge_index", inter.edge_index(), persistent=False)
        self.conv = LightGCNConv(cached=True, backend=backend)
        self.pruned = PrunedInteractions(inter, prune_ratio, backend) if prune_ratio else None
        self.reset_parameters()

    @property
    def pruned_edge_index(self) -> Tensor | None:
        """The epoch's pruned graph (``None`` before its first training pass, or unpruned)."""
        return None if self.pruned is None else self.pruned.edge_index

    def reset_parameters(self) -> None:
        self.ids.reset_parameters()
        self.conv.reset_parameters()
        self.on_epoch_start()

    def on_epoch_start(self) -> None:
        """With ``prune_ratio``, every training epoch draws a new pruned graph."""
        if self.pruned is not None:
            self.pruned.reset()

    def propagate(self) -> tuple[Tensor, Tensor]:
        """:math:`(\\mathbf{H}^{IN}_{user}, \\mathbf{H}^{IN}_{item})`, over the epoch's pruned graph
        in training when ``prune_ratio``."""
        conv, edge_index = self.conv, self.edge_index
        if self.pruned is not None and self.training:
            conv, edge_index = self.pruned.graph()
        return id_layer_mean(conv, self.ids.user.weight, self.ids.item.weight, edge_index, self.num_layers)

    def embed(self) -> Embeddings:
        user, item = self.propagate()
        return Embeddings(user, item)

    def ego_embeddings(self, users: Tensor, pos: Tensor, neg: Tensor) -> list[Tensor]:
        return self.ids.ego(users, pos, neg)

r"""The small pieces every recommender repeats, written once: the user/item ID-embedding pair, frozen
per-modality feature tables, LightGCN's layer combinations over a user-item (or item-item) graph,
the BPR term, the L2 term on a batch's embeddings and the InfoNCE term against every candidate.

A model composes them; none of them names a model or a modality.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ..graph.interaction import InteractionGraph, degree_sensitive_prune
from ..utils import ConfigError
from .conv import LightGCNConv

#: initialisations an :class:`IDEmbedding` accepts, by name
ID_INITS: dict[str, Callable[[Tensor], Tensor]] = {
    "xavier_uniform": torch.nn.init.xavier_uniform_,
    "xavier_normal": torch.nn.init.xavier_normal_,
}


class IDEmbedding(torch.nn.Module):
    r"""The ID embeddings of users and items, :math:`\mathbf{E}^u \in \mathbb{R}^{U \times d}` and
    :math:`\mathbf{E}^i \in \mathbb{R}^{N \times d}`, two tables initialised separately (so each
    table's Xavier scale follows its own size, as in LightGCN and MMRec's baselines).

    The owning model applies ``init`` by calling :meth:`reset_parameters` at the end of its own
    ``__init__`` (until then the tables hold ``nn.Embedding``'s standard normal draw), so that a
    model's random draws, and hence its weights under a seed, follow the order of its
    ``reset_parameters``.

    Args:
        n_users: :math:`U`.
        n_items: :math:`N`.
        dim: :math:`d`.
        init: ``"xavier_uniform"`` or ``"xavier_normal"`` (default ``"xavier_uniform"``).

    Shapes:
        - :meth:`forward`: :math:`[\mathbf{E}^u; \mathbf{E}^i]` ``[U + N, d]`` (users first)
        - :meth:`ego`: three tensors ``[B, d]``
    """

    def __init__(self, n_users: int, n_items: int, dim: int, init: str = "xavier_uniform") -> None:
        super().__init__()
        if init not in ID_INITS:
            raise ValueError(f"IDEmbedding: init '{init}' is not one of {sorted(ID_INITS)}.")
        self.n_users, self.n_items, self.dim, self.init = n_users, n_items, dim, init
        self.user = torch.nn.Embedding(n_users, dim)
        self.item = torch.nn.Embedding(n_items, dim)

    def reset_parameters(self) -> None:
        ID_INITS[self.init](self.user.weight)
        ID_INITS[self.init](self.item.weight)

    def forward(self) -> Tensor:
        """Both tables stacked, users first: the layer-0 input of a user-item graph."""
        return torch.cat([self.user.weight, self.item.weight])

    def ego(self, users: Tensor, pos: Tensor, neg: Tensor) -> list[Tensor]:
        """The layer-0 rows of a BPR batch: ``[E^u[users], E^i[pos], E^i[neg]]``."""
        return [self.user(users), self.item(pos), self.item(neg)]


class FrozenFeatures(torch.nn.Module):
    """Per-modality feature tables held as non-persistent buffers: they move with the model
    (``.to(device)``) and are not trained or saved in checkpoints (they are rebuilt from the data).

    Args:
        features: ``{m: [n_items, d_m]}`` (e.g. ``dense_modal_features`` of the baselines).

    Shapes:
        - :meth:`forward`: ``[n_items, d_m]`` of the ``j``-th modality
    """

    def __init__(self, features: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.names = list(features)
        for j, x in enumerate(features.values()):
            self.register_buffer(f"feat_{j}", x, persistent=False)

    def __len__(self) -> int:
        return len(self.names)

    def forward(self, j: int) -> Tensor:
        """The features of the ``j``-th modality (in ``names`` order)."""
        return getattr(self, f"feat_{j}")


def last_layer(
    conv: LightGCNConv, x: Tensor, edge_index: Tensor, num_layers: int, edge_weight: Tensor | None = None
) -> Tensor:
    r"""The last layer only, :math:`\tilde{A}^L x` (``x`` itself when ``num_layers`` is 0)."""
    for _ in range(num_layers):
        x = conv(x, edge_index, edge_weight)
    return x


def layer_sum(
    conv: LightGCNConv, x: Tensor, edge_index: Tensor, num_layers: int, edge_weight: Tensor | None = None
) -> Tensor:
    r"""The sum of every layer, :math:`\sum_{l=0}^{L} \tilde{A}^l x` (GRCN, DualGNN)."""
    out = x
    for _ in range(num_layers):
        x = conv(x, edge_index, edge_weight)
        out = out + x
    return out


def layer_mean(
    conv: LightGCNConv, x: Tensor, edge_index: Tensor, num_layers: int, edge_weight: Tensor | None = None
) -> Tensor:
    r"""LightGCN's layer combination :math:`\frac{1}{L+1}\sum_{l=0}^{L} \tilde{A}^l x`."""
    return layer_sum(conv, x, edge_index, num_layers, edge_weight) / (num_layers + 1)


def id_layer_mean(
    conv: LightGCNConv,
    user_emb: Tensor,
    item_emb: Tensor,
    edge_index: Tensor,
    num_layers: int,
    edge_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r""":func:`layer_mean` of the ID embeddings :math:`[\mathbf{E}^u; \mathbf{E}^i]` over the
    user-item graph (users first), split into ``(users [U, d], items [N, d])``."""
    out = layer_mean(conv, torch.cat([user_emb, item_emb]), edge_index, num_layers, edge_weight)
    return out[: user_emb.size(0)], out[user_emb.size(0) :]


def _pair_scores(user: Tensor, pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor]:
    """Scores ``[B]`` of the positives and ``[B, K]`` of the negatives (``neg`` ``[B, d]`` or
    ``[B, K, d]``)."""
    pos_score = (user * pos).sum(-1)
    if neg.dim() == user.dim():
        return pos_score, (user * neg).sum(-1).unsqueeze(-1)
    return pos_score, (user.unsqueeze(-2) * neg).sum(-1)


def bpr_loss(user: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    r"""BPR (Rendle et al., UAI 2009; the paper's Eq. 6) on a batch of ``[B, d]`` rows:

    .. math::
        -\frac{1}{B}\sum_{b} \log\sigma(\mathbf{u}_b\cdot\mathbf{p}_b - \mathbf{u}_b\cdot\mathbf{n}_b)

    (PyG's ``BPRLoss`` without its regulariser, on the scores it would be given.) With ``K``
    negatives per positive (``neg`` ``[B, K, d]``) the mean over the :math:`B \times K` pairs.
    """
    pos_score, neg_score = _pair_scores(user, pos, neg)
    return -F.logsigmoid(pos_score.unsqueeze(-1) - neg_score).mean()


def softmax_loss(user: Tensor, pos: Tensor, neg: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Sampled softmax of each positive against its own ``K`` negatives (``neg`` ``[B, K, d]``, or
    ``[B, d]`` for one), scores :math:`s = \mathbf{u}\cdot\mathbf{i}` over a temperature
    :math:`\tau`:

    .. math::
        -\frac{1}{B}\sum_b \log \frac{e^{s_{b,p}/\tau}}{e^{s_{b,p}/\tau} + \sum_k e^{s_{b,n_k}/\tau}}

    (the sampled softmax loss of recommendation, e.g. Wu et al., "On the Effectiveness of Sampled
    Softmax Loss for Item Recommendation", TOIS 2024), without a log-Q correction: for uniform
    negatives it would add the same :math:`\log(N/K)` to every negative's logit, i.e. weigh the
    negatives against the positive by a constant. With one negative and :math:`\tau = 1` it is BPR.
    """
    pos_score, neg_score = _pair_scores(user, pos, neg)
    logits = torch.cat([pos_score.unsqueeze(-1), neg_score], -1) / temperature
    return (torch.logsumexp(logits, -1) - logits[:, 0]).mean()


#: ``train.rec_loss``: the loss of a user against a positive and its negatives
REC_LOSSES = ("bpr", "softmax")


def check_rec_loss(form: str, temperature: float) -> None:
    """A one-line :class:`~emmkgr_pyg.utils.ConfigError` for a ``train.rec_loss`` or
    ``train.rec_temperature`` that cannot work."""
    if form not in REC_LOSSES:
        raise ConfigError(f"train.rec_loss: '{form}' is not one of {REC_LOSSES}.")
    if not temperature > 0:
        raise ConfigError(f"train.rec_temperature must be positive, got {temperature}.")


class _ScoreLogSumExp(torch.autograd.Function):
    r"""Row-wise :math:`\log\sum_n \exp(\mathbf{a}_b \cdot \mathbf{c}_n)` of ``a`` ``[B, d]`` against
    ``c`` ``[N, d]``: the forward turns the scores into their exponentials in place and saves them,
    the backward weighs them by the incoming gradient over their row sums (the softmax times the
    gradient); ``torch.logsumexp(a @ c.T)`` keeps the scores and recomputes their exponentials."""

    @staticmethod
    def forward(ctx, a: Tensor, c: Tensor) -> Tensor:
        scores = a @ c.t()
        top = scores.amax(1, keepdim=True)
        exp = scores.sub_(top).exp_()
        total = exp.sum(1, keepdim=True)
        ctx.save_for_backward(a, c, exp, total)
        return (total.log() + top).view(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        a, c, exp, total = ctx.saved_tensors
        weight = exp * (grad.view(-1, 1) / total)  # not in place: a retained graph reuses ``exp``
        grad_a = weight @ c if ctx.needs_input_grad[0] else None
        grad_c = weight.t() @ a if ctx.needs_input_grad[1] else None
        return grad_a, grad_c


def info_nce(anchor: Tensor, positive: Tensor, candidates: Tensor, temperature: float) -> Tensor:
    r"""InfoNCE summed over the batch, each ``anchor[b]`` against its ``positive[b]`` among all
    ``candidates`` (rows are L2-normalised first; MMRec's ``ssl_triple_loss`` of LGMRec):

    .. math::
        \sum_b -\log \frac{\exp(\hat{\mathbf{a}}_b \cdot \hat{\mathbf{p}}_b / \tau)}
        {\sum_n \exp(\hat{\mathbf{a}}_b \cdot \hat{\mathbf{c}}_n / \tau)}

    The denominator goes through a log-sum-exp (no overflow at any :math:`\tau`) with one
    ``[B, N]`` block in memory and one exponential per score (:class:`_ScoreLogSumExp`)."""
    a = F.normalize(anchor) / temperature
    pos = (a * F.normalize(positive)).sum(-1)
    return (_ScoreLogSumExp.apply(a, F.normalize(candidates)) - pos).sum()


#: forms of the L2 term on a batch's embeddings (:func:`embedding_reg`)
REG_FORMS = ("mmrec", "squared")


def embedding_reg(embeddings: list[Tensor], batch_size: int, form: str = "mmrec") -> Tensor:
    r"""The L2 term on a batch's embeddings :math:`\mathbf{E}_1, \dots` (without its weight):

    - ``"mmrec"`` (default; MMRec's ``EmbLoss``, so that MMRec's ``reg_weight`` grids mean the same
      here): the sum of the Frobenius norms, not squared, over the batch size,
      :math:`\frac{1}{B}\sum_j \|\mathbf{E}_j\|_F`;
    - ``"squared"`` (LightGCN's paper, PyG's ``BPRLoss``):
      :math:`\frac{1}{2B}\sum_j \|\mathbf{E}_j\|_F^2`.

    At a Xavier initialisation of 64-d tables a weight of :math:`10^{-2}` in the first form is about
    :math:`10^{-3}` in the second.
    """
    if form == "mmrec":
        return sum(e.norm() for e in embeddings) / batch_size
    if form == "squared":
        return 0.5 * sum(e.pow(2).sum() for e in embeddings) / batch_size
    raise ValueError(f"embedding_reg: form '{form}' is not one of {REG_FORMS}.")


class PrunedInteractions(torch.nn.Module):
    r"""FREEDOM's denoised user-item graph (shared by :class:`~emmkgr_pyg.baselines.FREEDOM` and a
    LightGCN with ``prune_ratio``): one draw of
    :func:`~emmkgr_pyg.graph.interaction.degree_sensitive_prune` per training epoch, propagated
    with its own cached :class:`LightGCNConv`.

    :meth:`graph` gives ``(conv, edge_index)`` of the current draw, drawing one when there is none;
    :meth:`reset` (every epoch start) drops it. ``edge_index`` is the current draw or ``None``.
    """

    def __init__(self, inter: InteractionGraph, prune_ratio: float, backend: str = "auto") -> None:
        super().__init__()
        self.n_users, self.n_items, self.prune_ratio = inter.n_users, inter.n_items, prune_ratio
        self.register_buffer("edge_user", inter.user.long(), persistent=False)
        self.register_buffer("edge_item", inter.item.long(), persistent=False)
        self.conv = LightGCNConv(cached=True, backend=backend)
        self.edge_index: Tensor | None = None

    def reset(self) -> None:
        self.edge_index = None

    def graph(self) -> tuple[LightGCNConv, Tensor]:
        if self.edge_index is None:
            keep = degree_sensitive_prune(
                self.edge_user, self.edge_item, self.n_users, self.n_items, self.prune_ratio
            )
            kept = InteractionGraph(self.n_users, self.n_items, self.edge_user[keep], self.edge_item[keep])
            self.edge_index = kept.edge_index()
            self.conv.reset_parameters()  # drop the cached adjacency of the last draw
        return self.conv, self.edge_index

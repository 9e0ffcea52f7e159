r"""RotatE on given embeddings (paper section 3.2, Eq. 5): a stateless score and its losses.

PyG's :class:`torch_geometric.nn.kge.RotatE` owns its embedding tables; E-MMKGR scores the outputs
of a GNN, so here the score is a function of (head, relation phase, tail) tensors that broadcast,
and the relations are a separate module of phases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..utils import ConfigError

NORMS = ("complex_l1", "l2", "squared_l2")
VARIANTS = ("logsigmoid", "pairwise", "margin", "softmax")


def rotate_distance(head: Tensor, phase: Tensor, tail: Tensor, norm: str = "complex_l1") -> Tensor:
    r"""The RotatE distance :math:`\|\mathbf{h} \circ \mathbf{r} - \mathbf{t}\|` with
    :math:`\mathbf{r} = e^{i\theta}` (modulus 1).

    Embeddings are complex: the first ``d/2`` entries are real parts, the last ``d/2`` imaginary.

    Args:
        head, tail: ``[..., d]`` (broadcast against each other).
        phase: relation phases :math:`\theta`, ``[..., d/2]``.
        norm: ``"complex_l1"`` (sum of complex moduli: the RotatE paper and the authors' code),
            ``"l2"`` (Euclidean norm over real and imaginary parts: PyG's ``RotatE``) or
            ``"squared_l2"`` (:math:`\|\cdot\|^2`, as the E-MMKGR paper writes it).

    Returns:
        distances of shape ``[...]``.
    """
    if head.size(-1) % 2:
        raise ValueError(f"rotate_distance: embedding size {head.size(-1)} must be even (re + im).")
    h_re, h_im = head.chunk(2, dim=-1)
    t_re, t_im = tail.chunk(2, dim=-1)
    cos, sin = torch.cos(phase), torch.sin(phase)
    re = h_re * cos - h_im * sin - t_re
    im = h_re * sin + h_im * cos - t_im
    sq = re * re + im * im
    if norm == "complex_l1":
        return torch.sqrt(sq + 1e-9).sum(-1)
    if norm == "l2":
        return torch.sqrt(sq.sum(-1) + 1e-12)
    if norm == "squared_l2":
        return sq.sum(-1)
    raise ValueError(f"rotate_distance: norm '{norm}' is not one of {NORMS}.")


def check_rotate_dim(dim: int) -> None:
    """Refuse an odd embedding size for RotatE (complex: real and imaginary halves), before any
    work that needs it; :class:`~emmkgr_pyg.utils.ConfigError` names ``model.net.dim`` and the fix."""
    if int(dim) % 2 or int(dim) < 2:
        raise ConfigError(
            f"RelationPhases: model.net.dim={dim} must be even and positive (RotatE splits each "
            f"embedding into real and imaginary halves); set model.net.dim={max(2, int(dim) + 1)}."
        )


class RelationPhases(torch.nn.Module):
    r"""One phase vector :math:`\theta_r \in [-\pi, \pi)^{d/2}` per relation, so that
    :math:`\mathbf{r} = e^{i\theta_r}` has modulus 1 by construction.

    Args:
        num_relations: number of relations.
        dim: entity embedding size ``d`` (even); relations have ``d/2`` phases.
    """

    def __init__(self, num_relations: int, dim: int) -> None:
        super().__init__()
        check_rotate_dim(dim)
        self.num_relations, self.dim = num_relations, dim
        self.phase = torch.nn.Embedding(num_relations, dim // 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.uniform_(self.phase.weight, -math.pi, math.pi)

    def forward(self, rel: Tensor) -> Tensor:
        return self.phase(rel)


class KGLoss(torch.nn.Module):
    r"""The knowledge-graph loss of Eq. 5 on RotatE distances.

    - ``"logsigmoid"`` (the RotatE paper):
      :math:`-\log\sigma(\gamma - d^+) - \sum_k w_k \log\sigma(d^-_k - \gamma)`;
    - ``"pairwise"`` (default; Eq. 5 read as a ranking of each positive over its negatives, no
      margin to calibrate):
      :math:`-\sum_k w_k \log\sigma(d^-_k - d^+)`;
    - ``"margin"`` (the authors' code): :math:`\sum_k w_k \max(0, m + d^+ - d^-_k)`;
    - ``"softmax"`` (an extension): the positive against its :math:`K` corruptions at once,
      :math:`-\log \frac{\exp(-d^+/\tau)}{\exp(-d^+/\tau) + \sum_k \exp(-d^-_k/\tau)}`, the
      sampled softmax that ``train.rec_loss=softmax`` is on the interactions; with one negative
      at :math:`\tau = 1` it is ``"pairwise"`` (no weights :math:`w`: the softmax already puts the
      gradient on the closest corruptions, which is what the self-adversarial weights do).

    :math:`w_k = 1/K`, or with ``adversarial_temperature`` :math:`\alpha` the self-adversarial
    weights of RotatE, :math:`w = \mathrm{softmax}(-\alpha d^-)` (no gradient through ``w``).
    The loss is averaged over the batch.

    ``gamma="auto"`` calibrates :math:`\gamma_r` to the embeddings, one per relation: the first
    batch that holds relation :math:`r` sets it to the mean distance of its negatives of :math:`r`
    (random pairs at initialisation), and it is kept (a buffer, saved in checkpoints;
    :meth:`reset_parameters` clears it). A fixed :math:`\gamma` far from the random-pair distance
    leaves one side without gradient: RotatE's 12 on 32 complex dimensions whose random pairs are
    ~7 apart gives the positives :math:`\sigma(7 - 12) \approx 0.007` of the negatives' gradient;
    and modalities of different scales are apart by different amounts, hence one per relation.
    At :math:`\gamma_r = \mathbb{E}[d^-_r]` both sides start at :math:`\sigma(0) = 0.5`.

    Args:
        variant: ``"logsigmoid"``, ``"pairwise"`` or ``"margin"`` (default ``"pairwise"``).
        gamma: the margin :math:`\gamma` of ``"logsigmoid"``, a number or ``"auto"``
            (default ``"auto"``).
        margin: the margin :math:`m` of ``"margin"`` (default ``1.0``).
        temperature: :math:`\tau` of ``"softmax"`` (default ``1.0``).
        adversarial_temperature: :math:`\alpha`, or ``None`` for uniform weights (not with
            ``"softmax"``).
        num_relations: how many :math:`\gamma_r` ``"auto"`` keeps (default ``1``: one for all).
    """

    def __init__(
        self,
        variant: str = "pairwise",
        gamma: float | str = "auto",
        margin: float = 1.0,
        adversarial_temperature: float | None = None,
        num_relations: int = 1,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"KGLoss: variant '{variant}' is not one of {VARIANTS}.")
        if not temperature > 0:
            raise ValueError(f"KGLoss: temperature {temperature} must be positive.")
        if variant == "softmax" and adversarial_temperature:
            raise ValueError(
                "KGLoss: adversarial_temperature weighs the corruptions of the pairwise forms; the "
                "'softmax' variant weighs them itself: set adversarial_temperature to null."
            )
        self.temperature = float(temperature)
        if isinstance(gamma, str) and gamma != "auto":
            raise ValueError(f"KGLoss: gamma '{gamma}' must be a number or 'auto'.")
        self.variant = variant
        self.auto_gamma = gamma == "auto"
        self.margin = margin
        self.adversarial_temperature = adversarial_temperature
        # NaN until calibrated (gamma="auto"); a buffer so that a checkpoint restores it; the
        # other variants have none
        value = math.nan if self.auto_gamma else float(gamma)
        size = num_relations if self.auto_gamma else 1
        self.register_buffer("gamma", torch.full((size,), value) if variant == "logsigmoid" else None)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # checkpoints written before gamma became a buffer have none: keep the configured one
        if self.gamma is not None:
            state_dict.setdefault(prefix + "gamma", self.gamma.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reset_parameters(self) -> None:
        if self.auto_gamma and self.gamma is not None:
            self.gamma.fill_(math.nan)

    def forward(self, pos_dist: Tensor, neg_dist: Tensor, rel: Tensor | None = None) -> Tensor:
        """``pos_dist`` ``[B]``, ``neg_dist`` ``[B, K]``, relation ids ``rel`` ``[B]`` (used by
        a per-relation ``"auto"`` gamma) -> scalar loss."""
        if neg_dist.dim() == 1:
            neg_dist = neg_dist.unsqueeze(1)
        if self.variant == "logsigmoid":
            if self.gamma.numel() > 1 and rel is None:
                raise ValueError("KGLoss: a per-relation gamma (num_relations > 1) needs the batch's rel.")
            rel = torch.zeros_like(pos_dist, dtype=torch.long) if self.gamma.numel() == 1 else rel
            if torch.isnan(self.gamma[rel]).any():
                self._calibrate(neg_dist.detach(), rel)
        if self.variant == "softmax":
            logits = -torch.cat([pos_dist.unsqueeze(1), neg_dist], dim=1) / self.temperature
            return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()
        if self.adversarial_temperature:
            w = torch.softmax(-self.adversarial_temperature * neg_dist, dim=1).detach()
        else:
            w = torch.full_like(neg_dist, 1.0 / neg_dist.size(1))
        pos = pos_dist.unsqueeze(1)
        if self.variant == "logsigmoid":
            gamma = self.gamma[rel].to(pos_dist.dtype)
            loss = -F.logsigmoid(gamma - pos_dist) - (w * F.logsigmoid(neg_dist - gamma[:, None])).sum(1)
        elif self.variant == "pairwise":
            loss = -(w * F.logsigmoid(neg_dist - pos)).sum(1)
        else:
            loss = (w * F.relu(self.margin + pos - neg_dist)).sum(1)
        return loss.mean()

    @torch.no_grad()
    def _calibrate(self, neg_dist: Tensor, rel: Tensor) -> None:
        todo = torch.isnan(self.gamma)
        total = torch.zeros_like(self.gamma).index_add_(0, rel, neg_dist.mean(1).to(self.gamma.dtype))
        count = torch.bincount(rel, minlength=self.gamma.numel()).to(self.gamma.dtype)
        seen = todo & (count > 0)
        self.gamma[seen] = total[seen] / count[seen]

    def extra_repr(self) -> str:
        gamma = ""
        if self.gamma is not None:
            values = ", ".join(f"{float(g):.4g}" for g in self.gamma[:4])
            values += ", ..." if self.gamma.numel() > 4 else ""
            gamma = f"gamma={f'auto ({values})' if self.auto_gamma else values}, "
        return (
            f"variant={self.variant}, {gamma}margin={self.margin}, temperature={self.temperature}, "
            f"adversarial_temperature={self.adversarial_temperature}"
        )

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
VARIANTS = ("logsigmoid", "pairwise", "margin")


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

    - ``"logsigmoid"`` (default, the RotatE paper):
      :math:`-\log\sigma(\gamma - d^+) - \sum_k w_k \log\sigma(d^-_k - \gamma)`;
    - ``"pairwise"`` (Eq. 5 read as a ranking of each positive over its negatives):
      :math:`-\sum_k w_k \log\sigma(d^-_k - d^+)`;
    - ``"margin"`` (the authors' code): :math:`\sum_k w_k \max(0, m + d^+ - d^-_k)`.

    :math:`w_k = 1/K`, or with ``adversarial_temperature`` :math:`\alpha` the self-adversarial
    weights of RotatE, :math:`w = \mathrm{softmax}(-\alpha d^-)` (no gradient through ``w``).
    The loss is averaged over the batch.

    Args:
        variant: ``"logsigmoid"``, ``"pairwise"`` or ``"margin"``.
        gamma: the margin :math:`\gamma` of ``"logsigmoid"`` (default ``12.0``).
        margin: the margin :math:`m` of ``"margin"`` (default ``1.0``).
        adversarial_temperature: :math:`\alpha`, or ``None`` for uniform weights.
    """

    def __init__(
        self,
        variant: str = "logsigmoid",
        gamma: float = 12.0,
        margin: float = 1.0,
        adversarial_temperature: float | None = None,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"KGLoss: variant '{variant}' is not one of {VARIANTS}.")
        self.variant = variant
        self.gamma = gamma
        self.margin = margin
        self.adversarial_temperature = adversarial_temperature

    def forward(self, pos_dist: Tensor, neg_dist: Tensor) -> Tensor:
        """``pos_dist`` ``[B]``, ``neg_dist`` ``[B, K]`` -> scalar loss."""
        if neg_dist.dim() == 1:
            neg_dist = neg_dist.unsqueeze(1)
        if self.adversarial_temperature:
            w = torch.softmax(-self.adversarial_temperature * neg_dist, dim=1).detach()
        else:
            w = torch.full_like(neg_dist, 1.0 / neg_dist.size(1))
        pos = pos_dist.unsqueeze(1)
        if self.variant == "logsigmoid":
            loss = -F.logsigmoid(self.gamma - pos_dist) - (w * F.logsigmoid(neg_dist - self.gamma)).sum(1)
        elif self.variant == "pairwise":
            loss = -(w * F.logsigmoid(neg_dist - pos)).sum(1)
        else:
            loss = (w * F.relu(self.margin + pos - neg_dist)).sum(1)
        return loss.mean()

    def extra_repr(self) -> str:
        return (
            f"variant={self.variant}, gamma={self.gamma}, margin={self.margin}, "
            f"adversarial_temperature={self.adversarial_temperature}"
        )

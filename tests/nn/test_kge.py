"""rotate_distance, RelationPhases and KGLoss against PyG's RotatE and written-out formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn.kge import RotatE

from emmkgr_pyg.nn.kge import NORMS, VARIANTS, KGLoss, RelationPhases, check_rotate_dim, rotate_distance
from emmkgr_pyg.utils import ConfigError


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def complex_reference(head, phase, tail, norm):
    """``h o r - t`` with torch complex numbers, ``r = e^{i theta}``."""
    d = head.size(-1) // 2
    h = torch.complex(head[..., :d], head[..., d:])
    t = torch.complex(tail[..., :d], tail[..., d:])
    r = torch.polar(torch.ones_like(phase), phase)
    diff = h * r - t
    if norm == "complex_l1":
        return diff.abs().sum(-1)
    if norm == "squared_l2":
        return (diff.abs() ** 2).sum(-1)
    return diff.abs().pow(2).sum(-1).sqrt()


def test_l2_equals_pyg_rotate():
    torch.manual_seed(0)
    model = RotatE(num_nodes=6, num_relations=3, hidden_channels=4, margin=2.5)
    h = torch.tensor([0, 1, 2, 5, 3])
    r = torch.tensor([0, 2, 1, 1, 0])
    t = torch.tensor([4, 3, 2, 0, 1])
    pyg_distance = model.margin - model(h, r, t)
    with torch.no_grad():
        re, im, phase = model.node_emb.weight, model.node_emb_im.weight, model.rel_emb.weight
        ent = torch.cat([re, im], dim=-1)
        ours = rotate_distance(ent[h], phase[r], ent[t], norm="l2")
    assert ours.shape == (5,)
    torch.testing.assert_close(ours, pyg_distance.detach(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("norm", NORMS)
def test_norms_equal_complex_reference(norm):
    head, tail = randn(7, 6, seed=1), randn(7, 6, seed=2)
    phase = randn(7, 3, seed=3) * math.pi
    out = rotate_distance(head, phase, tail, norm)
    assert out.shape == (7,)
    torch.testing.assert_close(out, complex_reference(head, phase, tail, norm), rtol=0, atol=1e-5)


def test_default_norm_is_complex_l1():
    head, tail, phase = randn(3, 4, seed=4), randn(3, 4, seed=5), randn(3, 2, seed=6)
    torch.testing.assert_close(
        rotate_distance(head, phase, tail), rotate_distance(head, phase, tail, "complex_l1")
    )


@pytest.mark.parametrize("norm", NORMS)
def test_broadcasting_over_negatives(norm):
    b, k, d = 4, 5, 6
    head, tails = randn(b, 1, d, seed=7), randn(b, k, d, seed=8)
    phase = randn(b, 1, d // 2, seed=9)
    out = rotate_distance(head, phase, tails, norm)
    assert out.shape == (b, k)
    for i in range(b):
        for j in range(k):
            expected = rotate_distance(head[i, 0], phase[i, 0], tails[i, j], norm)
            torch.testing.assert_close(out[i, j], expected)
    # and heads [B, K, d] against one tail [B, 1, d]
    assert rotate_distance(tails, phase, head, norm).shape == (b, k)


def test_relations_rotate_without_scaling():
    # |e^{i theta}| = 1: rotating h keeps its modulus, so d(h, r, 0) = ||h|| for any r
    rel = RelationPhases(5, 8)
    phase = rel(torch.arange(5))
    assert phase.shape == (5, 4)
    head = randn(5, 8, seed=10, dtype=torch.float32)
    moduli = torch.polar(torch.ones_like(phase), phase).abs()
    torch.testing.assert_close(moduli, torch.ones_like(moduli))
    torch.testing.assert_close(rotate_distance(head, phase, torch.zeros_like(head), "l2"), head.norm(dim=-1))
    # zero phase is the identity rotation
    assert rotate_distance(head, torch.zeros(5, 4), head, "squared_l2").abs().max() < 1e-10


def test_phases_initialised_in_minus_pi_pi_and_reset_changes_them():
    torch.manual_seed(0)
    rel = RelationPhases(50, 64)
    w = rel.phase.weight.detach()
    assert w.shape == (50, 32)
    assert float(w.min()) >= -math.pi and float(w.max()) <= math.pi
    assert float(w.min()) < -3.0 and float(w.max()) > 3.0  # spread over the whole range
    before = w.detach().clone()
    rel.reset_parameters()
    after = rel.phase.weight.detach()
    assert not torch.equal(before, after)
    assert (before != after).float().mean() > 0.99


def test_odd_dimension_raises():
    with pytest.raises(
        ConfigError,
        match=r"RelationPhases: model\.net\.dim=5 must be even and positive .* set model\.net\.dim=6\.$",
    ):
        RelationPhases(2, 5)
    with pytest.raises(ConfigError, match=r"model\.net\.dim=7 must be even"):
        check_rotate_dim(7)  # the check a run makes before it builds the graph
    assert check_rotate_dim(64) is None
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError, match="embedding size 5 must be even"):
        rotate_distance(torch.zeros(2, 5), torch.zeros(2, 2), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="norm 'l3' is not one of"):
        rotate_distance(torch.zeros(2, 4), torch.zeros(2, 2), torch.zeros(2, 4), norm="l3")


def test_kg_loss_logsigmoid_formula():
    pos, neg = randn(6, seed=11).abs() * 10, randn(6, 3, seed=12).abs() * 10
    gamma = 7.0
    loss = KGLoss("logsigmoid", gamma=gamma)(pos, neg)
    expected = torch.stack(
        [
            -F.logsigmoid(gamma - pos[b]) - sum(F.logsigmoid(neg[b, k] - gamma) / 3 for k in range(3))
            for b in range(6)
        ]
    ).mean()
    torch.testing.assert_close(loss, expected)
    assert loss.dim() == 0


def test_kg_loss_pairwise_formula():
    pos, neg = randn(5, seed=13), randn(5, 4, seed=14)
    loss = KGLoss("pairwise")(pos, neg)
    expected = (
        sum(
            -math.log(1 / (1 + math.exp(-(neg[b, k] - pos[b]).item()))) / 4
            for b in range(5)
            for k in range(4)
        )
        / 5
    )
    assert abs(loss.item() - expected) < 1e-10


def test_kg_loss_margin_formula():
    pos, neg = randn(5, seed=15), randn(5, 2, seed=16)
    loss = KGLoss("margin", margin=0.5)(pos, neg)
    expected = (
        sum(max(0.0, 0.5 + pos[b].item() - neg[b, k].item()) / 2 for b in range(5) for k in range(2)) / 5
    )
    assert abs(loss.item() - expected) < 1e-10


def test_kg_loss_one_negative_as_a_vector():
    pos, neg = randn(4, seed=17), randn(4, seed=18)
    for variant in VARIANTS:
        fn = KGLoss(variant)
        torch.testing.assert_close(fn(pos, neg), fn(pos, neg.unsqueeze(1)))


@pytest.mark.parametrize("variant", ["logsigmoid", "pairwise", "margin"])
def test_self_adversarial_weights_are_a_detached_softmax(variant):
    alpha = 0.7
    pos = randn(4, seed=19).requires_grad_()
    neg = (randn(4, 3, seed=20) * 3).requires_grad_()
    loss = KGLoss(variant, gamma=2.0, margin=1.5, adversarial_temperature=alpha)(pos, neg)
    loss.backward()

    pos2, neg2 = pos.detach().clone().requires_grad_(), neg.detach().clone().requires_grad_()
    w = torch.softmax(-alpha * neg2.detach(), dim=1)  # a constant
    if variant == "logsigmoid":
        per = -F.logsigmoid(2.0 - pos2) - (w * F.logsigmoid(neg2 - 2.0)).sum(1)
    elif variant == "pairwise":
        per = -(w * F.logsigmoid(neg2 - pos2[:, None])).sum(1)
    else:
        per = (w * torch.clamp(1.5 + pos2[:, None] - neg2, min=0)).sum(1)
    expected = per.mean()
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(neg.grad, neg2.grad)
    torch.testing.assert_close(pos.grad, pos2.grad)
    # the weights favour the hardest (closest) negatives
    assert not torch.allclose(w, torch.full_like(w, 1 / 3))


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_kg_loss_softmax_formula(tau):
    pos, neg = randn(5, seed=21), randn(5, 4, seed=22) * 2
    loss = KGLoss("softmax", temperature=tau)(pos, neg)
    expected = 0.0
    for b in range(5):
        den = math.exp(-pos[b].item() / tau) + sum(math.exp(-neg[b, k].item() / tau) for k in range(4))
        expected += -math.log(math.exp(-pos[b].item() / tau) / den) / 5
    assert abs(loss.item() - expected) < 1e-6


def test_kg_loss_softmax_with_one_negative_is_pairwise():
    pos, neg = randn(6, seed=23), randn(6, 1, seed=24)
    torch.testing.assert_close(KGLoss("softmax")(pos, neg), KGLoss("pairwise")(pos, neg))
    # and a lower temperature sharpens it: not the same loss any more
    assert not torch.allclose(KGLoss("softmax", temperature=0.5)(pos, neg), KGLoss("pairwise")(pos, neg))


def test_kg_loss_softmax_refuses_adversarial_weights_and_bad_temperature():
    with pytest.raises(ValueError, match="set adversarial_temperature to null"):
        KGLoss("softmax", adversarial_temperature=1.0)
    with pytest.raises(ValueError, match="temperature 0.0 must be positive"):
        KGLoss("softmax", temperature=0.0)
    assert "temperature=0.5" in repr(KGLoss("softmax", temperature=0.5))


def test_kg_loss_bad_variant_raises():
    with pytest.raises(ValueError, match="KGLoss: variant 'hinge' is not one of"):
        KGLoss("hinge")
    assert "variant=margin" in repr(KGLoss("margin"))


def test_auto_gamma_is_the_first_batchs_mean_negative_distance():
    fn = KGLoss("logsigmoid")  # gamma "auto" by default
    assert fn.auto_gamma and torch.isnan(fn.gamma)
    pos, neg = randn(6, seed=21).abs() * 4, randn(6, 3, seed=22).abs() * 9
    loss = fn(pos, neg)
    gamma = neg.mean().item()
    assert abs(fn.gamma.item() - gamma) < 1e-5
    expected = torch.stack(
        [
            -F.logsigmoid(gamma - pos[b]) - sum(F.logsigmoid(neg[b, k] - gamma) / 3 for k in range(3))
            for b in range(6)
        ]
    ).mean()
    torch.testing.assert_close(loss, expected)
    fn(pos, neg * 100)  # kept: later batches do not move it
    assert abs(fn.gamma.item() - gamma) < 1e-5
    assert "gamma=auto" in repr(fn)
    # a checkpoint restores it; reset clears it
    other = KGLoss("logsigmoid")
    other.load_state_dict(fn.state_dict())
    assert abs(other.gamma.item() - gamma) < 1e-5
    fn.reset_parameters()
    assert torch.isnan(fn.gamma)
    # a fixed gamma is never recalibrated
    fixed = KGLoss("logsigmoid", gamma=5.0)
    fixed(pos, neg)
    fixed.reset_parameters()
    assert fixed.gamma.item() == 5.0


def test_auto_gamma_per_relation():
    fn = KGLoss("logsigmoid", num_relations=3)
    pos, neg = randn(6, seed=23).abs(), randn(6, 2, seed=24).abs() * 5
    rel = torch.tensor([0, 0, 2, 2, 2, 0])  # relation 1 absent: not calibrated yet
    loss = fn(pos, neg, rel)
    g0, g2 = neg[rel == 0].mean().item(), neg[rel == 2].mean().item()
    torch.testing.assert_close(fn.gamma[[0, 2]], torch.tensor([g0, g2], dtype=torch.float32))
    assert torch.isnan(fn.gamma[1])
    gamma = torch.tensor([g0, 0, g2], dtype=torch.float64)[rel]
    expected = (-F.logsigmoid(gamma - pos) - 0.5 * F.logsigmoid(neg - gamma[:, None]).sum(1)).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    fn(pos, neg * 3, torch.tensor([1, 1, 0, 0, 0, 0]))  # relation 1 now; 0 and 2 kept
    g1 = (neg[:2] * 3).mean().item()
    torch.testing.assert_close(fn.gamma, torch.tensor([g0, g1, g2], dtype=torch.float32))
    with pytest.raises(ValueError, match="needs the batch's rel"):
        fn(pos, neg)


def test_auto_gamma_bad_value_raises():
    with pytest.raises(ValueError, match="KGLoss: gamma 'big' must be a number or 'auto'"):
        KGLoss(gamma="big")


def test_default_is_pairwise():
    fn = KGLoss()
    pos, neg = randn(5, seed=25), randn(5, 4, seed=26)
    torch.testing.assert_close(fn(pos, neg), KGLoss("pairwise")(pos, neg))
    assert fn.variant == "pairwise"
    # no margin to calibrate, and none in a checkpoint
    assert fn.gamma is None and "gamma" not in fn.state_dict()
    fn.load_state_dict({})


def test_a_checkpoint_without_gamma_still_loads():
    fn = KGLoss("logsigmoid", gamma=7.0)
    fn.load_state_dict({})  # a run saved before gamma was a buffer
    assert fn.gamma.item() == 7.0

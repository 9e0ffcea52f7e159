import math

import pytest
import torch

from emmkgr_pyg.nn import (
    FrozenFeatures,
    IDEmbedding,
    LightGCNConv,
    bpr_loss,
    embedding_reg,
    id_layer_mean,
    info_nce,
    last_layer,
    layer_mean,
    layer_sum,
    softmax_loss,
)

# a path 0 - 1 - 2 (both directions)
EDGES = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])


def test_id_embedding_draws_each_table_with_its_own_xavier_scale():
    torch.manual_seed(0)
    ids = IDEmbedding(3000, 10, 8)
    ids.reset_parameters()
    # xavier_uniform bound sqrt(6 / (fan_in + fan_out)) per table
    assert ids.user.weight.abs().max() <= math.sqrt(6 / (3000 + 8))
    assert ids.item.weight.abs().max() > math.sqrt(6 / (3000 + 8))
    assert ids.item.weight.abs().max() <= math.sqrt(6 / (10 + 8))
    normal = IDEmbedding(3000, 10, 8, init="xavier_normal")
    normal.reset_parameters()
    assert normal.user.weight.std().item() == pytest.approx(math.sqrt(2 / (3000 + 8)), rel=0.05)
    with pytest.raises(ValueError, match="IDEmbedding: init 'kaiming'"):
        IDEmbedding(2, 2, 2, init="kaiming")


def test_id_embedding_stacks_users_first_and_gives_a_batch_rows():
    ids = IDEmbedding(2, 3, 4)
    table = ids()
    assert table.shape == (5, 4)
    torch.testing.assert_close(table[:2], ids.user.weight)
    torch.testing.assert_close(table[2:], ids.item.weight)
    u, p, n = ids.ego(torch.tensor([1]), torch.tensor([0]), torch.tensor([2]))
    torch.testing.assert_close(torch.cat([u, p, n]), table[[1, 2, 4]])


def test_frozen_features_are_buffers_outside_the_state_dict():
    x = {"text": torch.randn(4, 3), "image": torch.randn(4, 2)}
    feats = FrozenFeatures(x)
    assert feats.names == ["text", "image"] and len(feats) == 2
    assert feats(1) is x["image"]
    assert not list(feats.parameters()) and not feats.state_dict()
    assert feats.double()(0).dtype == torch.float64  # moves with the module


def test_layer_combinations_against_the_dense_operator():
    conv = LightGCNConv()
    x = torch.tensor([[1.0], [2.0], [4.0]])
    a = torch.zeros(3, 3)
    a[EDGES[1], EDGES[0]] = 1.0
    d = a.sum(1).pow(-0.5)
    a = d[:, None] * a * d[None, :]
    layers = [x, a @ x, a @ a @ x]
    torch.testing.assert_close(last_layer(conv, x, EDGES, 2), layers[2])
    torch.testing.assert_close(last_layer(conv, x, EDGES, 0), x)
    torch.testing.assert_close(layer_sum(conv, x, EDGES, 2), sum(layers))
    torch.testing.assert_close(layer_mean(conv, x, EDGES, 2), sum(layers) / 3)
    user, item = id_layer_mean(conv, x[:1], x[1:], EDGES, 2)
    torch.testing.assert_close(torch.cat([user, item]), sum(layers) / 3)
    assert user.shape == (1, 1) and item.shape == (2, 1)


def test_bpr_loss_by_hand():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    n = torch.tensor([[1.0, 5.0], [0.0, 2.0]])
    # score differences: 3 - 1 = 2 and 2 - 4 = -2
    expected = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 / (1 + math.exp(2)))) / 2
    assert bpr_loss(u, p, n).item() == pytest.approx(expected)


def _users_pos_negs(b: int, k: int, d: int, seed: int):
    """Random users and positives ``[b, d]`` and negatives ``[b, k, d]``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g), torch.randn(b, k, d, generator=g)


def test_bpr_loss_with_k_negatives_is_the_mean_over_every_pair():
    u, p, n = _users_pos_negs(4, 5, 3, seed=0)
    pairs = [
        -math.log(1 / (1 + math.exp(-(float(u[b] @ p[b]) - float(u[b] @ n[b, k])))))
        for b in range(4)
        for k in range(5)
    ]
    assert bpr_loss(u, p, n).item() == pytest.approx(sum(pairs) / 20, rel=1e-5)
    # one negative as [B, 1, d] is the plain [B, d] form
    torch.testing.assert_close(bpr_loss(u, p, n[:, :1]), bpr_loss(u, p, n[:, 0]))


def test_softmax_loss_by_hand():
    u, p, n = _users_pos_negs(3, 6, 4, seed=1)
    for tau in (1.0, 0.2):
        rows = []
        for b in range(3):
            top = math.exp(float(u[b] @ p[b]) / tau)
            rest = sum(math.exp(float(u[b] @ n[b, k]) / tau) for k in range(6))
            rows.append(-math.log(top / (top + rest)))
        assert softmax_loss(u, p, n, tau).item() == pytest.approx(sum(rows) / 3, rel=1e-5)
    # one negative at temperature 1: BPR (log sigma(a - b) = log e^a / (e^a + e^b))
    torch.testing.assert_close(softmax_loss(u, p, n[:, 0]), bpr_loss(u, p, n[:, 0]))
    assert softmax_loss(u, p, n, 0.5).item() != pytest.approx(softmax_loss(u, p, n, 1.0).item())


def _info_nce_mmrec(anchor, positive, candidates, tau):
    """MMRec's ssl_triple_loss (LGMRec) written as it is: exp of the scores, their sum, -log."""
    a = anchor / anchor.norm(dim=1, keepdim=True)
    p = positive / positive.norm(dim=1, keepdim=True)
    c = candidates / candidates.norm(dim=1, keepdim=True)
    pos_score = torch.exp((a * p).sum(dim=1) / tau)
    ttl_score = torch.exp(a @ c.T / tau).sum(dim=1)
    return -torch.log(pos_score / ttl_score).sum()


def test_info_nce_value_and_gradients_against_mmrec_form():
    g = torch.Generator().manual_seed(0)
    leaves = [torch.randn(n, 5, generator=g, dtype=torch.float64, requires_grad=True) for n in (6, 6, 9)]
    for tau in (0.2, 1.0):
        got = info_nce(*leaves, tau)
        want = _info_nce_mmrec(*leaves, tau)
        assert got.item() == pytest.approx(want.item(), rel=1e-12)
        got_grads = torch.autograd.grad(got, leaves)
        want_grads = torch.autograd.grad(want, leaves)
        for gg, wg in zip(got_grads, want_grads):
            assert wg.abs().max() > 1e-3  # every input carries gradient
            torch.testing.assert_close(gg, wg, rtol=1e-10, atol=1e-12)
    # a retained graph differentiated twice gives the same gradients twice
    loss = info_nce(*leaves, 0.2)
    first = torch.autograd.grad(loss, leaves, retain_graph=True)
    for again, once in zip(torch.autograd.grad(loss, leaves), first):
        torch.testing.assert_close(again, once, rtol=0, atol=0)
    # the anchor among the candidates as well (LGMRec: a batch's rows against the whole table)
    table = leaves[2]
    got = torch.autograd.grad(info_nce(table[:4], leaves[1][:4], table, 0.5), table)[0]
    want = torch.autograd.grad(_info_nce_mmrec(table[:4], leaves[1][:4], table, 0.5), table)[0]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_info_nce_stays_finite_where_the_plain_form_overflows():
    g = torch.Generator().manual_seed(1)
    a, p, c = (torch.randn(n, 4, generator=g) for n in (3, 3, 7))
    c[0] = a[0]  # a score of exactly 1 / tau
    tau = 0.01  # exp(100) overflows float32
    assert not torch.isfinite(_info_nce_mmrec(a, p, c, tau))
    got = info_nce(a, p, c, tau)
    want = _info_nce_mmrec(a.double(), p.double(), c.double(), tau)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_embedding_reg_forms_against_their_formulas():
    g = torch.Generator().manual_seed(0)
    embs = [torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3)]
    # MMRec's EmbLoss written the obvious way: sqrt of the sum of squares of each tensor, summed, / B
    mmrec = sum(math.sqrt(sum(v * v for v in e.flatten().tolist())) for e in embs) / 4
    squared = 0.5 * sum(v * v for e in embs for v in e.flatten().tolist()) / 4
    assert embedding_reg(embs, 4).item() == pytest.approx(mmrec, rel=1e-12)
    assert embedding_reg(embs, 4, "mmrec").item() == pytest.approx(mmrec, rel=1e-12)
    assert embedding_reg(embs, 4, "squared").item() == pytest.approx(squared, rel=1e-12)
    assert mmrec != pytest.approx(squared)
    with pytest.raises(ValueError, match="embedding_reg: form 'l1'"):
        embedding_reg(embs, 4, "l1")

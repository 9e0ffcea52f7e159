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
    last_layer,
    layer_mean,
    layer_sum,
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

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData

from emmkgr_pyg.baselines.grcn import GRCN


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row softmax over the entries where ``mask`` is 1; rows without any are 0."""
    return torch.nan_to_num(torch.softmax(scores.masked_fill(mask == 0, float("-inf")), 1))


def test_trains_on_tiny_data(tiny, train, random_recall):
    model, state, valid = train(GRCN, tiny, epochs=4, batch_size=256, lr=1e-2, lambda_kg=0.0)
    assert len(model.modalities) == 4  # title, description, review (hashed text) and image
    losses = [r["loss/bpr"] for r in state.history]
    assert losses[-1] < 0.7 * losses[0]
    assert state.best_metric > 1.5 * random_recall(valid, 20)
    emb = model.embed()
    assert emb.user.shape == (200, 5 * 64) and emb.item.shape == (150, 5 * 64)


def test_refined_graph_matches_dense_computation(hand_graph):
    inter, kg = hand_graph
    torch.manual_seed(0)
    model = GRCN(inter, kg, dim=8, num_routing=2)
    U, N, E = 6, 5, inter.user.numel()
    R = torch.zeros(U, N)
    R[inter.user, inter.item] = 1.0
    with torch.no_grad():
        weight, content = model.refine()
        emb = model.embed()
        score_ui, score_iu, dense_content = [], [], []
        for k, proto in enumerate(model.prototypes):
            f = F.normalize(F.leaky_relu(proto.proj(model.features(k))))
            p = F.normalize(proto.preference)
            for _ in range(2):
                p = F.normalize(p + masked_softmax(p @ f.T, R) @ f)
            a_ui = masked_softmax(f @ p.T, R.T)  # [N, U]: edge u -> i, over the users of item i
            a_iu = masked_softmax(p @ f.T, R)  # [U, N]: edge i -> u, over the items of user u
            dense_content.append(torch.cat([p + a_iu @ f, f + a_ui @ p]))
            score_ui.append(a_ui * model.confidence[:U, k])  # confidence of the source user
            score_iu.append(a_iu * model.confidence[U:, k])  # confidence of the source item
        w_ui = torch.relu(torch.stack(score_ui).max(0).values)
        w_iu = torch.relu(torch.stack(score_iu).max(0).values)
        expected = torch.cat([w_ui[inter.item, inter.user], w_iu[inter.user, inter.item]])
        torch.testing.assert_close(weight, expected)
        assert (weight == 0).any() and (weight > 0).any()  # some edges are pruned, not all
        for got, want in zip(content, dense_content):
            torch.testing.assert_close(got, want)
        adj = torch.zeros(U + N, U + N)  # adj[t, s] = weight of s -> t
        adj[U:, :U], adj[:U, U:] = w_ui, w_iu
        e = F.normalize(model.id_embedding)
        z = e + adj @ e + adj @ adj @ e
        rep = torch.cat([z, *dense_content], 1)
    torch.testing.assert_close(emb.user, rep[:U])
    torch.testing.assert_close(emb.item, rep[U:])
    assert weight.shape == (2 * E,)


def test_needs_modality_features(hand_graph):
    inter, _ = hand_graph
    with pytest.raises(ValueError, match="GRCN: needs the E-MMKG"):
        GRCN(inter, None)
    empty = HeteroData()
    empty["item"].num_nodes = 5
    with pytest.raises(ValueError, match="no modality node type"):
        GRCN(inter, empty)

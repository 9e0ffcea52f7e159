"""Link prediction ranks: against PyG's KGEModel.test (unfiltered) and hand-made filtered cases."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn.kge import RotatE

from emmkgr_pyg.eval.link_prediction import link_prediction, rank_metrics, tail_ranks
from emmkgr_pyg.nn.kge import rotate_distance


def table_distance(dist: torch.Tensor):
    """A distance given as a table ``dist[h, r, t]``."""
    return lambda h, r, t: dist[h, r, t]


def test_unfiltered_equals_pyg_kge_test():
    torch.manual_seed(0)
    n, n_rel = 40, 3
    model = RotatE(num_nodes=n, num_relations=n_rel, hidden_channels=8, margin=3.0)
    g = torch.Generator().manual_seed(1)
    test = torch.stack(
        [
            torch.randint(n, (25,), generator=g),
            torch.randint(n_rel, (25,), generator=g),
            torch.randint(n, (25,), generator=g),
        ]
    )
    mean_rank, mrr, hits10 = model.test(test[0], test[1], test[2], batch_size=16, k=10, log=False)

    ent = torch.cat([model.node_emb.weight, model.node_emb_im.weight], dim=-1).detach()
    phase = model.rel_emb.weight.detach()
    ours = link_prediction(
        lambda h, r, t: rotate_distance(ent[h], phase[r], ent[t], "l2"),
        test,
        n,
        n_rel,
        ks=(1, 10),
        batch_size=7,
    )
    # PyG's rank is 0-based (MR = mean rank - 1), ours 1-based
    assert ours["n"] == 25
    assert abs(ours["MRR"] - mrr) < 1e-6
    assert abs(ours["MR"] - 1 - mean_rank) < 1e-5
    assert abs(ours["Hits@10"] - hits10) < 1e-9

    # and PyG's own score as the distance gives the same
    def pyg_distance(h, r, t):  # PyG's forward takes flat index vectors
        h, r, t = torch.broadcast_tensors(h, r, t)
        return -model(h.reshape(-1), r.reshape(-1), t.reshape(-1)).view(h.shape)

    pyg = link_prediction(pyg_distance, test, n, n_rel, ks=(10,))
    assert abs(pyg["MRR"] - mrr) < 1e-6


def test_filtering_removes_other_true_tails_and_typing_restricts_candidates():
    # 6 nodes; relation 0 from node 0: distances to tails 0..5
    dist = torch.full((6, 1, 6), 10.0)
    dist[0, 0] = torch.tensor([5.0, 1.0, 2.0, 3.0, 0.5, 9.0])
    test = torch.tensor([[0], [0], [3]])  # true tail 3 at distance 3
    known = torch.tensor([[0, 0, 0], [0, 0, 0], [1, 3, 4]])  # (0,0,1) and (0,0,4) are also true
    fn = table_distance(dist)
    # unfiltered, all nodes: 1, 2 and 4 are closer -> rank 4
    assert tail_ranks(fn, test, 6, 1).tolist() == [4.0]
    # filtered: 1 and 4 are true triples and leave the ranking -> only 2 is closer -> rank 2
    assert tail_ranks(fn, test, 6, 1, known=known).tolist() == [2.0]
    # typed: candidates are nodes 2..5 only (2 and 4 closer) -> rank 3; filtered too: 4 leaves -> 2
    tail_range = torch.tensor([[2, 4]])
    assert tail_ranks(fn, test, 6, 1, tail_range=tail_range).tolist() == [3.0]
    assert tail_ranks(fn, test, 6, 1, tail_range=tail_range, known=known).tolist() == [2.0]
    # the true triple itself is in `known` and still ranked
    m = link_prediction(fn, test, 6, 1, known=known, ks=(1, 2))
    assert m == {"MRR": 0.5, "MR": 2.0, "Hits@1": 0.0, "Hits@2": 1.0, "n": 1}


def test_ties_count_half_so_a_constant_score_ranks_in_the_middle():
    dist = torch.zeros(1, 1, 5)
    ranks = tail_ranks(table_distance(dist), torch.tensor([[0], [0], [2]]), 5, 1)
    assert ranks.tolist() == [3.0]  # 1 + 4 ties / 2


def test_filter_is_per_head_and_relation():
    # (0, 0, 1) is true; it must not filter for head 2 or relation 1
    dist = torch.full((3, 2, 3), 5.0)
    dist[:, :, 1] = 1.0
    dist[:, :, 0] = 3.0
    known = torch.tensor([[0], [0], [1]])
    test = torch.tensor([[0, 2, 0], [0, 0, 1], [0, 0, 0]])
    assert tail_ranks(table_distance(dist), test, 3, 2, known=known).tolist() == [1.0, 2.0, 2.0]


def test_rank_metrics_by_hand():
    m = rank_metrics(torch.tensor([1.0, 2.0, 4.0, 20.0]), ks=(1, 10))
    assert m["MRR"] == pytest.approx((1 + 0.5 + 0.25 + 0.05) / 4)
    assert m["MR"] == pytest.approx(6.75)
    assert m["Hits@1"] == 0.25 and m["Hits@10"] == 0.75
    assert rank_metrics(torch.tensor([])) == {}

import itertools

import pytest
import torch
import torch.nn.functional as F

from emmkgr_pyg.baselines.lgmrec import LGMRec


def hand_infonce(a, p, c, tau=0.2):
    """MMRec's ssl_triple_loss written the obvious way: -log softmax of each anchor's positive."""
    a, p, c = F.normalize(a), F.normalize(p), F.normalize(c)
    return -torch.log(torch.exp((a * p).sum(1) / tau) / torch.exp(a @ c.T / tau).sum(1)).sum()


def test_trains_on_tiny_data(tiny, train, random_recall):
    _, state, valid = train(LGMRec, tiny, epochs=4, batch_size=256, lr=1e-2, lambda_kg=0.0)
    losses = [r["loss/bpr"] for r in state.history]
    assert losses[-1] < 0.7 * losses[0]
    assert all(r["loss/cl"] > 0 for r in state.history)
    assert state.best_metric > 1.5 * random_recall(valid, 20)


def test_embeddings_match_dense_hypergraph_formula(hand_graph):
    inter, kg = hand_graph
    torch.manual_seed(0)
    model = LGMRec(inter, kg, dim=8, num_hyper_layers=2, hyper_num=3, alpha=0.5).eval()
    U, N = 6, 5
    R = torch.zeros(U, N)
    R[inter.user, inter.item] = 1.0
    adj = torch.zeros(U + N, U + N)
    adj[:U, U:], adj[U:, :U] = R, R.T
    deg = adj.sum(1)
    d = torch.where(deg > 0, deg.clamp(min=1).pow(-0.5), torch.zeros_like(deg))
    adj = d[:, None] * adj * d[None, :]
    with torch.no_grad():
        emb = model.embed()
        e = torch.cat([model.ids.user.weight, model.ids.item.weight])
        cge = (e + adj @ e + adj @ adj @ e) / 3
        local, glob, hyper_user, hyper_item = cge.clone(), 0, [], []
        for j, m in enumerate(["text", "image", "audio"]):
            x = kg[m].x.mean(0).repeat(N, 1)  # items lacking the modality: its mean feature
            x[kg[m].item] = kg[m].x
            item = x @ model.item_trs[j]
            h = torch.cat([(R @ item) / R.sum(1, keepdim=True), item])
            local = local + F.normalize(adj @ adj @ h)
            lam_i = torch.softmax(x @ model.hyper[j] / 0.2, 1)
            lam_u = torch.softmax(R @ x @ model.hyper[j] / 0.2, 1)
            i1 = lam_i @ lam_i.T @ cge[U:]  # layer 1; layer 2 below
            u_m, i_m = lam_u @ lam_i.T @ i1, lam_i @ lam_i.T @ i1
            hyper_user.append(u_m)
            hyper_item.append(i_m)
            glob = glob + torch.cat([u_m, i_m])
        out = local + 0.5 * F.normalize(glob)
    torch.testing.assert_close(emb.user, out[:U])
    torch.testing.assert_close(emb.item, out[U:])
    torch.testing.assert_close(emb.extra["hyper_user"], torch.stack(hyper_user))
    torch.testing.assert_close(emb.extra["hyper_item"], torch.stack(hyper_item))


def test_losses_average_the_contrastive_term_over_modality_pairs(hand_graph):
    inter, kg = hand_graph
    torch.manual_seed(0)
    model = LGMRec(inter, kg, dim=8, cl_weight=1.0, reg_weight=0.0).eval()
    users, pos, neg = torch.tensor([0, 1, 5]), torch.tensor([1, 2, 3]), torch.tensor([4, 4, 0])
    with torch.no_grad():
        emb = model.embed()
        losses = model.rec_losses(emb, users, pos, neg)

        hu, hi = emb.extra["hyper_user"], emb.extra["hyper_item"]
        pairs = list(itertools.combinations(range(3), 2))
        cl = sum(
            hand_infonce(hu[a][users], hu[b][users], hu[b]) + hand_infonce(hi[a][pos], hi[b][pos], hi[b])
            for a, b in pairs
        )
    assert set(losses) == {"bpr", "cl"}
    torch.testing.assert_close(losses["cl"], cl / 3)
    # training mode draws Gumbel noise and drops memberships: two passes differ
    model.train()
    assert not torch.equal(model.embed().user, model.embed().user)


def test_sampled_pairs_are_one_pair_per_step_and_the_mean_in_expectation(hand_graph):
    inter, kg = hand_graph
    torch.manual_seed(0)
    model = LGMRec(inter, kg, dim=8, cl_weight=1.0, reg_weight=0.0, cl_pairs="sample").eval()
    users, pos, neg = torch.tensor([0, 1, 5]), torch.tensor([1, 2, 3]), torch.tensor([4, 4, 0])
    with torch.no_grad():
        emb = model.embed()
        hu, hi = emb.extra["hyper_user"], emb.extra["hyper_item"]

        per_pair = {
            (a, b): (
                hand_infonce(hu[a][users], hu[b][users], hu[b]) + hand_infonce(hi[a][pos], hi[b][pos], hi[b])
            ).item()
            for a, b in itertools.combinations(range(3), 2)
        }
        draws = [model.rec_losses(emb, users, pos, neg)["cl"].item() for _ in range(600)]
    # every step's term is one pair's, and each pair comes up about a third of the time
    counts = {k: sum(abs(d - v) < 1e-5 * max(1.0, abs(v)) for d in draws) for k, v in per_pair.items()}
    assert sum(counts.values()) == len(draws)
    assert all(150 <= c <= 250 for c in counts.values()), counts
    assert abs(sum(draws) / len(draws) - sum(per_pair.values()) / 3) < 0.1 * abs(sum(per_pair.values()) / 3)
    model.cl_pairs = "all"
    with torch.no_grad():
        assert model.rec_losses(emb, users, pos, neg)["cl"].item() == pytest.approx(
            sum(per_pair.values()) / 3, rel=1e-5
        )


def test_rejects_bad_settings(hand_graph):
    inter, kg = hand_graph
    with pytest.raises(ValueError, match="keep_rate must be in"):
        LGMRec(inter, kg, keep_rate=0.0)
    with pytest.raises(ValueError, match="cl_pairs=both"):
        LGMRec(inter, kg, cl_pairs="both")
    with pytest.raises(ValueError, match="num_hyper_layers must be >= 1"):
        LGMRec(inter, kg, num_hyper_layers=0)
    with pytest.raises(ValueError, match="LGMRec: needs the E-MMKG"):
        LGMRec(inter, None)

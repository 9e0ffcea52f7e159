import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData

from emmkgr_pyg.baselines.grcn import GRCN
from emmkgr_pyg.data.dataset import VALID
from emmkgr_pyg.data.encoders import HashingTextEncoder
from emmkgr_pyg.data.features import encode_dataset, resolve_modalities
from emmkgr_pyg.data.synthetic import SyntheticReader
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph import InteractionGraph, build_emmkg
from emmkgr_pyg.train import TrainConfig, Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    # the machine is shared: intra-op threads only add contention on graphs this small
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    """The synthetic shop (title, description, review as hashed text; image) and its E-MMKG."""
    ds = SyntheticReader(n_users=200, n_items=150, n_interactions=2000, image_dim=32).read(None, "tiny")
    cfg = {"text_encoder": HashingTextEncoder(dim=64), "image_encoder": None, "include": None, "exclude": []}
    ds, _ = encode_dataset(ds, resolve_modalities(ds, cfg), progress=False)
    return ds, InteractionGraph.from_dataset(ds), build_emmkg(ds, modal_modal=False)


def random_recall(evaluator: RankingEvaluator, k: int) -> float:
    """Expected Recall@k of a uniformly random ranking of each user's non-training items."""
    n_train = evaluator.train_indptr[1:] - evaluator.train_indptr[:-1]
    candidates = (evaluator.n_items - n_train[evaluator.users]).double()
    return float((k / candidates).clamp(max=1).mean())


def hand_graph(seed: int = 0) -> tuple[InteractionGraph, HeteroData]:
    """6 users, 5 items (item 4 has no interaction); three modalities, two missing some items."""
    g = torch.Generator().manual_seed(seed)
    user = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 5, 5, 5])
    item = torch.tensor([0, 1, 1, 2, 3, 0, 2, 3, 1, 0, 2, 3])
    kg = HeteroData()
    kg["item"].num_nodes = 5
    for m, items, d in (("text", [0, 1, 2, 3, 4], 6), ("image", [1, 2, 4], 3), ("audio", [0, 3], 4)):
        kg[m].x = torch.randn(len(items), d, generator=g)
        kg[m].item = torch.tensor(items)
    return InteractionGraph(6, 5, user, item), kg


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row softmax over the entries where ``mask`` is 1; rows without any are 0."""
    return torch.nan_to_num(torch.softmax(scores.masked_fill(mask == 0, float("-inf")), 1))


def test_trains_on_tiny_data(tiny):
    ds, inter, kg = tiny
    torch.manual_seed(0)
    model = GRCN(inter, kg)
    assert len(model.modalities) == 4  # title, description, review (hashed text) and image
    valid = RankingEvaluator(inter, *ds.interactions.part(VALID), ks=(20,))
    cfg = TrainConfig(epochs=4, batch_size=256, lr=1e-2, lambda_kg=0.0, ks=(20,), progress=False, seed=0)
    state = Trainer(model, inter, valid, None, cfg).fit()
    losses = [r["loss/bpr"] for r in state.history]
    assert losses[-1] < 0.7 * losses[0]
    assert state.best_metric > 1.5 * random_recall(valid, 20)
    emb = model.embed()
    assert emb.user.shape == (200, 5 * 64) and emb.item.shape == (150, 5 * 64)


def test_refined_graph_matches_dense_computation():
    inter, kg = hand_graph()
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


def test_needs_modality_features():
    inter, _ = hand_graph()
    with pytest.raises(ValueError, match="GRCN: needs the E-MMKG"):
        GRCN(inter, None)
    empty = HeteroData()
    empty["item"].num_nodes = 5
    with pytest.raises(ValueError, match="no modality node type"):
        GRCN(inter, empty)

"""Sampled propagation: with fan-out -1 the batch's embeddings and losses are the full pass's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emmkgr_pyg.data.dataset import Catalog, Modality
from emmkgr_pyg.data.readers.base import finalize
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn.emmkgr import EMMKGR
from emmkgr_pyg.nn.recommender import LightGCN
from emmkgr_pyg.nn.sampled import gather_blocks, sampled_embeddings
from emmkgr_pyg.train.sampled import SampledTrainer, hop_fanouts, local_ids, seeds_after
from emmkgr_pyg.train.samplers import BPRSampler, KGNegativeSampler
from emmkgr_pyg.train.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def setup():
    """240 users x 120 items, 6 interactions each, two modalities that miss some items: sparse
    enough that a batch's 2-hop neighbourhood is a real subgraph."""
    rng = np.random.default_rng(0)
    n_users, n_items = 240, 120
    user = np.repeat(np.arange(n_users), 6)
    item = np.concatenate([rng.choice(n_items, 6, replace=False) for _ in range(n_users)])
    coverage = {"text": np.arange(0, n_items, 2), "image": np.arange(n_items)[np.arange(n_items) % 3 > 0]}
    mods = {
        m: Modality(m, "feature", idx, features=rng.normal(size=(len(idx), 5))) for m, idx in coverage.items()
    }
    ids = [f"i{i}" for i in range(n_items)]
    catalog = Catalog(ids, [None] * n_items, [None] * n_items, [[] for _ in ids], modalities=mods)
    dataset = finalize("sparse", [f"u{u}" for u in range(n_users)], user, item, catalog)
    inter = InteractionGraph.from_dataset(dataset)
    kg = build_emmkg(dataset, top_n=3, knn=KNNBuilder(progress=False))
    return inter, kg


def make(setup, model_cls, fanout=-1, add_self_loops=False, sampler="torch", model_kw=None, **cfg):
    inter, kg = setup
    torch.manual_seed(0)
    kw = {"add_self_loops": add_self_loops, **(model_kw or {})} if model_cls is EMMKGR else {}
    model = model_cls(inter, kg, dim=8, **kw)
    with torch.no_grad():  # non-zero projections biases etc.: every input matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ev = RankingEvaluator(inter, inter.user[:2].numpy(), inter.item[:2].numpy())
    config = TrainConfig(
        epochs=1,
        batch_size=16,
        progress=False,
        seed=0,
        propagation="sampled",
        fanout=fanout,
        sampler=sampler,
        **cfg,
    )
    return SampledTrainer(model, inter, ev, None, config, kg=kg_view(kg)), model


@pytest.mark.parametrize("sampler", ["pyg", "torch"])
@pytest.mark.parametrize("add_self_loops", [False, True])
def test_full_fanout_gives_the_full_embeddings_of_the_batch(setup, add_self_loops, sampler):
    trainer, model = make(setup, EMMKGR, add_self_loops=add_self_loops, sampler=sampler)
    users, items = torch.tensor([0, 3, 7]), torch.tensor([1, 2, 9, 15])
    inter_sub = trainer.inter_sampler(torch.cat([users, items + trainer.n_users]))
    kg_ids = torch.tensor([21, 4, 30])  # item 4 and two modality nodes
    kg_sub = trainer.kg_sampler(seeds_after(items, kg_ids))
    assert inter_sub.n_id.numel() < 0.6 * (model.n_users + model.n_items)  # a real subgraph
    assert kg_sub.n_id.numel() < 0.6 * model.encoder.view.num_nodes
    emb = sampled_embeddings(model, inter_sub, kg_sub)
    full = model.embed()
    torch.testing.assert_close(emb.user, full.user[users], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(emb.item, full.item[items], atol=1e-6, rtol=1e-5)
    h_mm_ids = torch.cat([items, torch.tensor([4, 21, 30])])
    torch.testing.assert_close(emb.extra["H_mm"], full.extra["H_mm"][h_mm_ids], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("sampler", "rec_loss", "k"), [("pyg", "bpr", 1), ("torch", "bpr", 1), ("torch", "softmax", 3)]
)
def test_full_fanout_gives_the_full_losses_and_gradients(setup, sampler, rec_loss, k):
    trainer, model = make(setup, EMMKGR, sampler=sampler, rec_loss=rec_loss, num_negatives=k)
    g = torch.Generator().manual_seed(1)
    users, pos, neg = next(iter(BPRSampler(trainer.inter, 16, g, num_negatives=k)))
    kg = next(iter(KGNegativeSampler(kg_view(setup[1]), batch_size=8, generator=g)))
    sampled = trainer.batch_losses(users, pos, neg, kg)
    sum(sampled.values()).backward()
    # sampled training reads the ID tables row by row: sparse gradients (train.optimizer=auto)
    assert model.cf.ids.user.weight.grad.is_sparse
    grads = [p.grad.to_dense() for p in model.parameters()]
    model.zero_grad()
    full_emb = model.embed()
    full = {**model.rec_losses(full_emb, users, pos, neg), **model.kg_losses(full_emb, kg)}
    assert sampled.keys() == full.keys() == {rec_loss, "reg", "kg"}
    for k in full:
        torch.testing.assert_close(sampled[k], full[k], atol=1e-6, rtol=1e-5)
    sum(full.values()).backward()
    for a, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad.to_dense(), atol=1e-6, rtol=1e-5)


def test_sampled_align_is_infonce_over_the_modality_nodes_of_the_batch_items(setup):
    trainer, model = make(setup, EMMKGR, model_kw={"align_weight": 0.5, "align_temperature": 0.2})
    g = torch.Generator().manual_seed(1)
    users, pos, neg = next(iter(BPRSampler(trainer.inter, 16, g)))
    kg = next(iter(KGNegativeSampler(kg_view(setup[1]), batch_size=8, generator=g)))
    sampled = trainer.batch_losses(users, pos, neg, kg)
    assert {"bpr", "kg", "align"} <= set(sampled)
    # by hand, with the full pass's H^MM: the items among the KG seeds (the batch's items first),
    # each modality's nodes of those that have it, InfoNCE against their items
    seeds = seeds_after(
        torch.unique(torch.cat([pos, neg])),
        torch.cat([kg.head, kg.tail, kg.neg_head.view(-1), kg.neg_tail.view(-1)]),
    )
    items = seeds[seeds < model.n_items].tolist()
    h = torch.nn.functional.normalize(model.embed().extra["H_mm"].detach().double(), dim=-1)
    want = []
    for i, m in enumerate(model.encoder.modalities):
        owner = setup[1][m].item.tolist()
        mine = [it for it in items if it in owner]
        nodes = torch.tensor([owner.index(it) for it in mine])
        z = model.encoder.project(i, model.encoder.features(i)[nodes], reduced=True).detach().double()
        cos = torch.nn.functional.normalize(z, dim=-1) @ h[mine].T / 0.2
        want.append(torch.stack([torch.logsumexp(cos[r], 0) - cos[r, r] for r in range(len(mine))]).mean())
    assert len(items) > 16 and sampled["align"].item() == pytest.approx(
        0.5 * torch.stack(want).mean().item(), rel=1e-5
    )
    sampled["align"].backward()
    assert model.encoder.proj[0].weight.grad.abs().sum() > 0


def test_pyg_small_fanout_rescales_by_full_over_sampled_in_degree(setup):
    trainer, _ = make(setup, LightGCN, fanout=2, sampler="pyg")
    sub = trainer.inter_sampler(torch.tensor([0, 1, 2]))
    targets = sub.edge_index[1]
    sampled = torch.bincount(targets, minlength=sub.num_nodes).float()
    assert sampled[:3].tolist() == [2.0, 2.0, 2.0]  # every user has more than 2 items
    full_w = trainer.inter_sampler.loader.data.edge_weight[sub.e_id]
    scale = trainer.inter_sampler.in_degree[sub.n_id][targets] / sampled[targets]
    assert float(scale.min()) > 1.0
    torch.testing.assert_close(sub.edge_weight, full_w * scale)


def test_torch_small_fanout_draws_k_edges_worth_degree_over_k(setup):
    trainer, _ = make(setup, LightGCN, fanout=[3, 2])
    sampler = trainer.inter_sampler
    seeds = torch.tensor([0, 5, 240 + 7])  # two users (6 items each) and an item
    sub = sampler(seeds)
    assert sub.n_id[:3].tolist() == seeds.tolist() and sub.batch_size == 3
    src, dst = sub.n_id[sub.edge_index[0]], sub.n_id[sub.edge_index[1]]
    deg = sampler.in_degree.float()
    per_target = torch.bincount(sub.edge_index[1], minlength=sub.num_nodes)
    assert per_target[:2].tolist() == [3, 3]
    k = torch.where(torch.isin(sub.edge_index[1], torch.arange(3)), 3.0, 2.0)  # hop 1 or hop 2
    scale = torch.where(deg[dst] > k, deg[dst] / k, torch.ones_like(k))
    torch.testing.assert_close(sub.edge_weight, (deg[src] * deg[dst]).rsqrt() * scale)
    edges = set(zip(trainer.inter.user.tolist(), trainer.inter.item.tolist(), strict=True))
    for s_, d_ in zip(src.tolist(), dst.tolist(), strict=True):  # every sampled edge is real
        u, i = (d_, s_ - 240) if d_ < 240 else (s_, d_ - 240)
        assert (u, i) in edges
    assert int(sampler.local.max()) == -1  # the global -> local map is reset


@pytest.mark.parametrize("schedule", ["sum", "alternating"])
def test_sampled_training_lowers_the_bpr_loss(setup, schedule):
    trainer, _ = make(setup, EMMKGR, fanout=4, schedule=schedule)
    first = trainer.train_epoch()
    for _ in range(8):
        last = trainer.train_epoch()
    assert {"bpr", "kg"} <= set(first)
    assert last["bpr"] < first["bpr"]


def test_sampled_nodes_counts_every_step(setup):
    trainer, model = make(setup, EMMKGR, fanout=2)
    trainer.train_epoch()
    steps = len(trainer.bpr)
    counts = trainer.sampled_nodes
    assert counts["steps"] == steps
    # at least the batch's users and items are seeds; fan-out 2 keeps a subgraph, not the graph
    assert steps * 16 < counts["inter"] < steps * (model.n_users + model.n_items)
    assert steps * 16 < counts["kg"] < steps * model.encoder.view.num_nodes


def test_lightgcn_sampled_matches_full_trainer_loss_with_full_fanout(setup):
    trainer, model = make(setup, LightGCN)
    g = torch.Generator().manual_seed(2)
    users, pos, neg = next(iter(BPRSampler(trainer.inter, 16, g)))
    sampled = trainer.batch_losses(users, pos, neg, None)
    full = model.rec_losses(model.embed(), users, pos, neg)
    torch.testing.assert_close(sampled["bpr"], full["bpr"])
    assert isinstance(trainer, Trainer)


def test_unsupported_model_and_bad_fanout_raise(setup):
    inter, kg = setup
    model = EMMKGR(inter, kg, dim=8, fusion="item_graph")
    ev = RankingEvaluator(inter, inter.user[:2].numpy(), inter.item[:2].numpy())
    config = TrainConfig(epochs=1, progress=False, propagation="sampled", fanout=-1)
    with pytest.raises(ValueError, match="item_graph_layers=0.*train.propagation=full"):
        SampledTrainer(model, inter, ev, None, config, kg=kg_view(kg))
    with pytest.raises(ValueError, match="prune_ratio is not applied to sampled subgraphs"):
        SampledTrainer(EMMKGR(inter, kg, dim=8, prune_ratio=0.5), inter, ev, None, config, kg=kg_view(kg))
    with pytest.raises(ValueError, match="one per hop"):
        hop_fanouts([5, 5, 5], 2)
    with pytest.raises(ValueError, match="positive"):
        hop_fanouts(0, 2)
    with pytest.raises(ValueError, match="train.sampler: 'fast' is not one of"):
        make(setup, LightGCN, sampler="fast")


def test_gather_blocks_and_local_ids():
    a, b = torch.nn.Embedding(3, 2), torch.nn.Embedding(4, 2)
    n_id = torch.tensor([5, 0, 3, 2, 6])
    out = gather_blocks(n_id, [0, 3], [a, b])
    torch.testing.assert_close(out, torch.cat([a.weight, b.weight])[n_id])
    seeds = torch.tensor([7, 2, 9])
    assert local_ids(seeds, torch.tensor([9, 7, 7, 2])).tolist() == [2, 0, 0, 1]
    assert seeds_after(torch.tensor([4, 1]), torch.tensor([1, 8, 3, 8])).tolist() == [4, 1, 3, 8]


@pytest.mark.parametrize("sampler", ["pyg", "torch"])
def test_full_fanout_covers_entity_nodes(setup, sampler):
    # the same graph with brand entities (the last node block) shared by groups of items
    inter, kg = setup
    ds_brands = {i: f"b{i % 7}" for i in range(0, kg["item"].num_nodes, 2)}
    data = kg.clone()
    items = torch.tensor(sorted(ds_brands))
    ent = torch.tensor([int(ds_brands[int(i)][1:]) for i in items])
    data["brand"].num_nodes = 7
    data["item", "has_brand", "brand"].edge_index = torch.stack([items, ent])
    data["brand", "brand_of", "item"].edge_index = torch.stack([ent, items])
    trainer, model = make((inter, data), EMMKGR, sampler=sampler)
    view = model.encoder.view
    assert view.node_types[-1] == "brand"
    seeds = torch.tensor([1, 2, 9])
    kg_ids = torch.tensor([view.offsets["brand"] + 3, view.offsets["brand"], 30])
    ids = seeds_after(seeds, kg_ids)
    kg_sub = trainer.kg_sampler(ids)
    emb = sampled_embeddings(model, None, kg_sub)
    full = model.embed()
    torch.testing.assert_close(emb.extra["H_mm"], full.extra["H_mm"][ids], atol=1e-6, rtol=1e-5)

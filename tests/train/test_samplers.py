"""BPRSampler and KGNegativeSampler: negatives stay negative, typed ranges, coverage, seeding."""

from __future__ import annotations

import pytest
import torch

from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn.recommender import KGBatch
from emmkgr_pyg.train.samplers import BPRSampler, ItemNeighbors, KGNegativeSampler, _contains


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def inter(dataset) -> InteractionGraph:
    return InteractionGraph.from_dataset(dataset)


@pytest.fixture(scope="module")
def view(dataset):
    return kg_view(build_emmkg(dataset, top_n=3, knn=KNNBuilder(progress=False)))


def train_sets(inter):
    out = {}
    for u, i in zip(inter.user.tolist(), inter.item.tolist(), strict=True):
        out.setdefault(u, set()).add(i)
    return out


def test_contains():
    keys = torch.tensor([1, 4, 9])
    assert _contains(keys, torch.tensor([0, 1, 5, 9, 10])).tolist() == [False, True, False, True, False]
    assert _contains(torch.tensor([], dtype=torch.long), torch.tensor([1, 2])).tolist() == [False, False]


@pytest.mark.parametrize("k", [1, 3])
def test_bpr_negatives_never_training_items(inter, k):
    sampler = BPRSampler(inter, generator=gen())
    users = torch.randint(inter.n_users, (5000,), generator=gen(1))
    neg = sampler.negatives(users, k)
    assert neg.shape == ((5000,) if k == 1 else (5000, k)) and neg.dtype == torch.long
    seen = train_sets(inter)
    for u, row in zip(users.tolist(), neg.view(5000, -1).tolist(), strict=True):
        assert not seen[u] & set(row), (u, row)
    assert int(neg.min()) >= 0 and int(neg.max()) < inter.n_items
    # negatives are spread over the items a user has not seen, not one item
    assert len(set(neg.view(-1).tolist())) == inter.n_items


def test_bpr_epoch_covers_every_interaction_once(inter):
    sampler = BPRSampler(inter, batch_size=16, generator=gen())
    n = inter.user.numel()
    assert len(sampler) == (n + 15) // 16
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for users, pos, neg in batches[:-1]:
        assert users.shape == pos.shape == neg.shape == (16,)
    users = torch.cat([b[0] for b in batches])
    pos = torch.cat([b[1] for b in batches])
    got = sorted(zip(users.tolist(), pos.tolist(), strict=True))
    assert got == sorted(zip(inter.user.tolist(), inter.item.tolist(), strict=True))
    seen = train_sets(inter)
    for users, _pos, neg in batches:
        assert all(int(i) not in seen[int(u)] for u, i in zip(users, neg, strict=True))


def test_bpr_batches_with_k_negatives(inter):
    sampler = BPRSampler(inter, batch_size=16, generator=gen(), num_negatives=3)
    seen = train_sets(inter)
    batches = list(sampler)
    for users, pos, neg in batches:
        assert neg.shape == (users.numel(), 3) and pos.shape == users.shape
        for u, row in zip(users.tolist(), neg.tolist(), strict=True):
            assert not seen[u] & set(row), (u, row)
    # the one-negative default draws as before: [B], the stream of a permutation then negatives(users)
    one = BPRSampler(inter, batch_size=16, generator=gen())
    users, _, neg = next(iter(one))
    replay = BPRSampler(inter, batch_size=16, generator=gen())
    perm = torch.randperm(inter.user.numel(), generator=replay.generator)
    assert neg.shape == users.shape
    assert torch.equal(users, inter.user[perm[:16]]) and torch.equal(neg, replay.negatives(users))
    with pytest.raises(ValueError, match="train.num_negatives must be at least 1, got 0"):
        BPRSampler(inter, num_negatives=0)


def test_bpr_same_seed_same_batches(inter):
    a = list(BPRSampler(inter, batch_size=32, generator=gen(7)))
    b = list(BPRSampler(inter, batch_size=32, generator=gen(7)))
    c = list(BPRSampler(inter, batch_size=32, generator=gen(8)))
    assert all(torch.equal(x, y) for ba, bb in zip(a, b, strict=True) for x, y in zip(ba, bb, strict=True))
    assert not torch.equal(a[0][0], c[0][0])


def test_item_neighbors_draw_in_proportion_to_the_weights():
    # edges neighbour -> item: item 0 lists 1 (w 1), 2 (w 3) and itself; item 1 lists 0; item 2 none
    edge_index = torch.tensor([[1, 2, 0, 0], [0, 0, 0, 1]])
    nb = ItemNeighbors(edge_index, torch.tensor([1.0, 3.0, 5.0, 2.0]), 3)
    assert nb.degree(torch.tensor([0, 1, 2])).tolist() == [2, 1, 0]  # the self-loop is dropped
    draws = nb.draw(torch.zeros(40000, dtype=torch.long), gen(3))
    assert set(draws.tolist()) == {1, 2}
    assert abs(float((draws == 2).float().mean()) - 0.75) < 0.01
    assert nb.draw(torch.ones(5, 2, dtype=torch.long), gen()).tolist() == [[0, 0]] * 5
    # unweighted: uniform over the listed neighbours
    uniform = ItemNeighbors(edge_index, None, 3).draw(torch.zeros(40000, dtype=torch.long), gen(4))
    assert abs(float((uniform == 2).float().mean()) - 0.5) < 0.01


def test_bpr_hard_negatives_come_from_the_positives_neighbours(inter):
    n = inter.n_items
    # a ring: item i lists i + 1 and i + 2 (mod n)
    items = torch.arange(n)
    edge_index = torch.stack([torch.cat([(items + 1) % n, (items + 2) % n]), torch.cat([items, items])])
    nb = ItemNeighbors(edge_index, None, n)
    sampler = BPRSampler(
        inter, batch_size=64, generator=gen(), num_negatives=4, hard_negatives=2, neighbors=nb
    )
    seen = train_sets(inter)
    free = 0
    for users, pos, neg in sampler:
        assert neg.shape == (users.numel(), 4)
        for u, p, row in zip(users.tolist(), pos.tolist(), neg.tolist(), strict=True):
            assert not seen[u] & set(row)
            ring = {(p + 1) % n, (p + 2) % n}
            if not ring & seen[u]:  # both neighbours are negatives for u: the hard columns are them
                assert set(row[2:]) <= ring, (p, row)
                free += 1
    assert free > 50
    # the uniform columns are not: they hit the ring at the uniform rate, about 2 / n
    users, pos, neg = (torch.cat(x) for x in zip(*BPRSampler(inter, 64, gen(), 4, 2, nb)))
    hit = (neg == ((pos + 1) % n).view(-1, 1)) | (neg == ((pos + 2) % n).view(-1, 1))
    uniform_rate, hard_rate = float(hit[:, :2].float().mean()), float(hit[:, 2:].float().mean())
    assert uniform_rate < 4 / n and hard_rate > 0.5, (uniform_rate, hard_rate, n)
    # a positive without neighbours gets uniform draws in its hard columns too
    lonely = ItemNeighbors(torch.tensor([[1], [0]]), None, n)  # only item 0 lists one (item 1)
    users, pos, neg = (torch.cat(x) for x in zip(*BPRSampler(inter, 64, gen(), 3, 3, lonely)))
    others = neg[pos != 0]
    assert others.numel() and len(set(others.view(-1).tolist())) > 3
    assert all(not seen[int(u)] & set(row) for u, row in zip(users, neg.tolist(), strict=True))
    with pytest.raises(ValueError, match="train.hard_negatives=5: give 0 to 4"):
        BPRSampler(inter, num_negatives=4, hard_negatives=5, neighbors=nb)
    with pytest.raises(ValueError, match="with an item graph to draw them from"):
        BPRSampler(inter, num_negatives=4, hard_negatives=1)


def true_triples(view) -> set[tuple[int, int, int]]:
    return {tuple(t) for t in view.triples.t().tolist()}


def test_kg_typed_tail_corruptions_in_the_relation_range(view):
    sampler = KGNegativeSampler(view, batch_size=10_000, num_negatives=4, generator=gen())
    (batch,) = list(sampler)
    assert isinstance(batch, KGBatch)
    b = view.triples.size(1)
    assert batch.head.shape == batch.rel.shape == batch.tail.shape == (b,)
    assert batch.neg_head.shape == batch.neg_tail.shape == (b, 4)
    # tails only: the head is repeated
    assert torch.equal(batch.neg_head, batch.head.view(-1, 1).expand(-1, 4))
    start = view.tail_range[batch.rel, 0].view(-1, 1)
    count = view.tail_range[batch.rel, 1].view(-1, 1)
    assert ((batch.neg_tail >= start) & (batch.neg_tail < start + count)).all()
    # every relation's whole tail range is used
    for r in range(len(view.relations)):
        drawn = set(batch.neg_tail[batch.rel == r].view(-1).tolist())
        lo, n = view.tail_range[r].tolist()
        assert drawn <= set(range(lo, lo + n))
        assert len(drawn) > n // 2


def test_kg_filtered_corruptions_are_never_true_triples(view):
    truth = true_triples(view)
    sampler = KGNegativeSampler(
        view, batch_size=10_000, num_negatives=8, corrupt_heads=True, generator=gen(1)
    )
    for batch in sampler:
        r = batch.rel.view(-1, 1).expand_as(batch.neg_tail)
        for h, rr, t in zip(
            batch.neg_head.reshape(-1).tolist(),
            r.reshape(-1).tolist(),
            batch.neg_tail.reshape(-1).tolist(),
            strict=True,
        ):
            assert (h, rr, t) not in truth
    # without the filter true triples do come back (similar_* relations are dense here)
    unfiltered = KGNegativeSampler(view, batch_size=10_000, num_negatives=8, filtered=False, generator=gen(1))
    (batch,) = list(unfiltered)
    r = batch.rel.view(-1, 1).expand_as(batch.neg_tail)
    hits = sum(
        (h, rr, t) in truth
        for h, rr, t in zip(
            batch.neg_head.reshape(-1).tolist(),
            r.reshape(-1).tolist(),
            batch.neg_tail.reshape(-1).tolist(),
            strict=True,
        )
    )
    assert hits > 0


def test_kg_corrupt_heads_keeps_the_tail(view):
    sampler = KGNegativeSampler(
        view, batch_size=10_000, num_negatives=3, corrupt_heads=True, generator=gen(2)
    )
    (batch,) = list(sampler)
    kept_head = (batch.neg_head == batch.head.view(-1, 1)).all(1)
    kept_tail = (batch.neg_tail == batch.tail.view(-1, 1)).all(1)
    on_head = ~kept_head
    assert on_head.any() and (~on_head).any()
    assert 0.3 < on_head.float().mean() < 0.7  # about half
    assert kept_tail[on_head].all()  # a head corruption keeps the tail
    # rows that kept their head corrupted their tail, within the relation's tail range
    s = view.head_range[batch.rel, 0].view(-1, 1)
    c = view.head_range[batch.rel, 1].view(-1, 1)
    assert ((batch.neg_head >= s) & (batch.neg_head < s + c))[on_head].all()
    s = view.tail_range[batch.rel, 0].view(-1, 1)
    c = view.tail_range[batch.rel, 1].view(-1, 1)
    assert ((batch.neg_tail >= s) & (batch.neg_tail < s + c))[~on_head].all()


def test_kg_untyped_draws_span_all_nodes(view):
    sampler = KGNegativeSampler(
        view, batch_size=10_000, num_negatives=16, typed=False, filtered=False, generator=gen(3)
    )
    (batch,) = list(sampler)
    drawn = batch.neg_tail.view(-1)
    assert int(drawn.min()) == 0 and int(drawn.max()) == view.num_nodes - 1
    # for has_<m>, some tails are not modality nodes of that type
    has = [r for r, (_, rel, _) in enumerate(view.relations) if rel.startswith("has_")][0]
    lo, n = view.tail_range[has].tolist()
    tails = batch.neg_tail[batch.rel == has].view(-1)
    assert ((tails < lo) | (tails >= lo + n)).any()


def test_kg_epoch_covers_every_triple_once_and_is_seeded(view):
    a = list(KGNegativeSampler(view, batch_size=50, num_negatives=2, generator=gen(4)))
    b = list(KGNegativeSampler(view, batch_size=50, num_negatives=2, generator=gen(4)))
    assert len(a) == (view.triples.size(1) + 49) // 50
    got = torch.cat([torch.stack([x.head, x.rel, x.tail]) for x in a], 1)
    assert sorted(map(tuple, got.t().tolist())) == sorted(map(tuple, view.triples.t().tolist()))
    for x, y in zip(a, b, strict=True):
        for f in ("head", "rel", "tail", "neg_head", "neg_tail"):
            assert torch.equal(getattr(x, f), getattr(y, f))
    cyc = KGNegativeSampler(view, batch_size=50, generator=gen(5)).cycle()
    assert sum(1 for _ in zip(range(2 * len(a) + 1), cyc, strict=False)) == 2 * len(a) + 1


def test_kg_untyped_any_relation_filter_never_gives_a_tail_the_head_has(view):
    """The authors' negatives: uniform over all nodes, never a tail the head has under any relation."""
    tails_of: dict[int, set[int]] = {}
    for h, _, t in view.triples.t().tolist():
        tails_of.setdefault(h, set()).add(t)
    sampler = KGNegativeSampler(
        view,
        batch_size=10_000,
        num_negatives=16,
        typed=False,
        filter_any_relation=True,
        generator=gen(5),
    )
    (batch,) = list(sampler)
    assert torch.equal(batch.neg_head, batch.head.view(-1, 1).expand_as(batch.neg_head))
    for h, row in zip(batch.head.tolist(), batch.neg_tail.tolist(), strict=True):
        assert not set(row) & tails_of[h]
    drawn = set(batch.neg_tail.view(-1).tolist())
    assert len(drawn) > 0.9 * view.num_nodes  # untyped: drawn over every node type
    # the per-relation filter lets through tails that the head has under another relation
    per_relation = KGNegativeSampler(view, batch_size=10_000, num_negatives=16, typed=False, generator=gen(5))
    (loose,) = list(per_relation)
    hits = sum(
        len(set(row) & tails_of[h])
        for h, row in zip(loose.head.tolist(), loose.neg_tail.tolist(), strict=True)
    )
    assert hits > 0

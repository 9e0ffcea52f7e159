"""train.optimizer: SparseAdam on the ID tables is lazy Adam (the equations written out), and the
settings it cannot serve are refused."""

from __future__ import annotations

import math

import pytest
import torch

from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn.emmkgr import EMMKGR
from emmkgr_pyg.nn.recommender import LightGCN
from emmkgr_pyg.train.optim import SparseDenseAdam, make_optimizer, resolve_optimizer, sparse_tables
from emmkgr_pyg.train.samplers import BPRSampler, KGNegativeSampler

from .test_sampled import make, setup  # noqa: F401  (the fixture)


def lazy_adam(p, m, v, rows, g, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam on the rows a batch touched, the others left alone (moments included); step ``t`` counts
    every step of the table, as torch's SparseAdam does (its eps is added before bias correction)."""
    m[rows] = b1 * m[rows] + (1 - b1) * g[rows]
    v[rows] = b2 * v[rows] + (1 - b2) * g[rows] ** 2
    step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
    p[rows] -= step * m[rows] / (v[rows].sqrt() + eps)


def test_sparse_adam_is_lazy_adam_on_the_id_tables(setup):  # noqa: F811
    trainer, model = make(setup, EMMKGR, fanout=4, optimizer="sparse_adam", lr=0.01)
    assert isinstance(trainer.optimizer, SparseDenseAdam)
    tables = {name: mod for name, mod in model.named_modules() if isinstance(mod, torch.nn.Embedding)}
    assert {"cf.ids.user", "cf.ids.item", "encoder.item_emb"} <= set(tables)
    ref = {n: t.weight.detach().clone() for n, t in tables.items()}
    moments = {n: (torch.zeros_like(w), torch.zeros_like(w)) for n, w in ref.items()}
    g = torch.Generator().manual_seed(3)
    kg = KGNegativeSampler(kg_view(setup[1]), batch_size=8, generator=g)
    batches = zip(BPRSampler(trainer.inter, 16, g), kg, strict=False)
    untouched_once = False
    for t, ((users, pos, neg), kg_batch) in enumerate(batches, start=1):
        if t > 3:
            break
        trainer.optimizer.zero_grad()
        sum(trainer.batch_losses(users, pos, neg, kg_batch).values()).backward()
        for n, tab in tables.items():
            grad = tab.weight.grad
            assert grad is not None and grad.is_sparse, n
            grad = grad.coalesce()
            rows = grad.indices()[0]
            untouched_once |= rows.numel() < tab.num_embeddings
            lazy_adam(ref[n], *moments[n], rows, grad.to_dense(), t, lr=0.01)
        trainer.optimizer.step()
        for n, tab in tables.items():
            torch.testing.assert_close(tab.weight.detach(), ref[n], atol=1e-6, rtol=1e-5)
    assert untouched_once  # some rows were not in a batch, and they did not move


def test_first_sparse_step_matches_dense_adam(setup):  # noqa: F811
    """On the first step Adam moves rows without gradient by 0/(0 + eps) = 0, so both move the same
    rows by ~lr * sign(g); SparseAdam adds eps before the bias correction (eps / sqrt(1 - b2)), which
    shows only where |g| is near 1e-7."""
    results = []
    for opt in ("adam", "sparse_adam"):
        trainer, model = make(setup, LightGCN, fanout=4, optimizer=opt, lr=0.01)
        before = torch.cat([model.ids.user.weight, model.ids.item.weight]).detach().clone()
        users, pos, neg = next(iter(BPRSampler(trainer.inter, 16, torch.Generator().manual_seed(4))))
        trainer._step(trainer.optimizer, trainer.batch_losses(users, pos, neg, None), {})
        grad = torch.cat([model.ids.user.weight.grad.to_dense(), model.ids.item.weight.grad.to_dense()])
        results.append((torch.cat([model.ids.user.weight, model.ids.item.weight]).detach() - before, grad))
    (dense, grad), (sparse, sparse_grad) = results
    torch.testing.assert_close(grad, sparse_grad)
    moved = grad.abs() > 1e-4
    assert moved.sum() > 100 and (~grad.ne(0).any(1)).sum() > 100  # rows with and without gradient
    torch.testing.assert_close(sparse[moved], dense[moved], atol=1e-6, rtol=1e-2)
    torch.testing.assert_close(dense[moved], -0.01 * grad.sign()[moved], atol=1e-6, rtol=1e-2)
    assert sparse[~grad.ne(0).any(1)].abs().max() == 0 == dense[~grad.ne(0).any(1)].abs().max()


def test_sampled_training_with_sparse_adam_lowers_the_bpr_loss(setup):  # noqa: F811
    trainer, _ = make(setup, EMMKGR, fanout=4, optimizer="auto", lr=0.01)
    assert isinstance(trainer.optimizer, SparseDenseAdam)
    first = trainer.train_epoch()
    for _ in range(6):
        last = trainer.train_epoch()
    assert last["bpr"] < first["bpr"] - 0.01


def test_state_dict_round_trip(setup):  # noqa: F811
    trainer, model = make(setup, LightGCN, fanout=4, optimizer="sparse_adam", lr=0.01)
    trainer.train_epoch()
    state = trainer.optimizer.state_dict()
    other = SparseDenseAdam(model, list(model.parameters()), lr=0.01)
    other.load_state_dict(state)
    # the saved state is not empty: both ID tables have moments, and some rows have moved
    (sparse_adam,) = trainer.optimizer.optimizers  # LightGCN has only ID tables
    assert {id(p) for p in sparse_adam.state} == {id(model.ids.user.weight), id(model.ids.item.weight)}
    assert all(float(s["exp_avg"].abs().sum()) > 0 for s in sparse_adam.state.values())
    for a, b in zip(trainer.optimizer.optimizers, other.optimizers, strict=True):
        assert len(b.state) == len(a.state)
        for p in a.state:
            for k, v in a.state[p].items():
                torch.testing.assert_close(b.state[p][k], v)
    with pytest.raises(ValueError, match="another train.optimizer"):
        other.load_state_dict(torch.optim.Adam(model.parameters()).state_dict())


def test_resolution_and_refusals(setup):  # noqa: F811
    assert resolve_optimizer("auto", "sampled") == "sparse_adam"
    assert resolve_optimizer("auto", "full") == "adam"
    with pytest.raises(ValueError, match="needs train.propagation=sampled"):
        resolve_optimizer("sparse_adam", "full")
    with pytest.raises(ValueError, match="not one of"):
        resolve_optimizer("sgd", "full")
    inter, kg = setup
    model = LightGCN(inter, kg, dim=8)
    with pytest.raises(ValueError, match="weight_decay is not supported"):
        make_optimizer(model, list(model.parameters()), "sparse_adam", "sampled", 0.01, weight_decay=1e-4)
    # a model that reads a whole table during training gets a one-line error, not a torch trace
    opt = make_optimizer(model, list(model.parameters()), "sparse_adam", "sampled", 0.01)
    assert all(t.sparse for t in sparse_tables(model))
    model.ids.user.weight.sum().backward()
    with pytest.raises(RuntimeError, match="dense gradient.*train.optimizer=adam"):
        opt.step()
    # a later dense Adam (e.g. full-graph fine-tuning of the same model) gets dense tables back
    make_optimizer(model, list(model.parameters()), "adam", "full", 0.01)
    assert not any(t.sparse for t in sparse_tables(model))

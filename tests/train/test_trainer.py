"""Trainer on a tiny hand-made dataset: learning, determinism, schedules, errors, checkpoints,
resumption and early stopping."""

from __future__ import annotations

import math

import pytest
import torch

from emmkgr_pyg.data.dataset import TEST, VALID
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn.emmkgr import EMMKGR
from emmkgr_pyg.nn.recommender import LightGCN
from emmkgr_pyg.train.trainer import (
    CheckpointMismatchError,
    DivergedLossError,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
)
from emmkgr_pyg.utils import seed_everything

BASE = {
    "epochs": 3,
    "batch_size": 32,
    "lr": 0.01,
    "kg_batch_size": 64,
    "ks": (5, 10),
    "metric": "Recall@10",
    "progress": False,
    "patience": 100,
}


@pytest.fixture(scope="module")
def kg(dataset):
    return build_emmkg(dataset, top_n=3, knn=KNNBuilder(progress=False))


@pytest.fixture
def make_trainer(dataset, kg):
    def make(
        model: str = "lightgcn",
        seed: int = 0,
        out_dir=None,
        init_seed: int | None = None,
        dim: int = 8,
        **cfg,
    ):
        seed_everything(seed if init_seed is None else init_seed)
        inter = InteractionGraph.from_dataset(dataset)
        valid = RankingEvaluator(inter, *dataset.interactions.part(VALID), ks=(5, 10))
        test = RankingEvaluator(inter, *dataset.interactions.part(TEST), ks=(5, 10))
        if model == "lightgcn":
            net, view = LightGCN(inter, dim=dim, num_layers=2), None
        else:
            net, view = EMMKGR(inter, kg, dim=dim, num_layers=2, kg_layers=2), kg_view(kg)
        config = TrainConfig(**{**BASE, "seed": seed, **cfg})
        return Trainer(net, inter, valid, test, config, kg=view, out_dir=out_dir)

    return make


def without_seconds(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_lightgcn_lowers_the_bpr_loss(make_trainer):
    trainer = make_trainer(epochs=8)
    state = trainer.fit()
    assert state.epoch == 8 and len(state.history) == 8
    first, last = state.history[0], state.history[-1]
    assert set(first) >= {"epoch", "loss/bpr", "loss/reg", "valid/Recall@10", "valid/NDCG@5", "seconds"}
    assert last["loss/bpr"] < first["loss/bpr"] - 0.05
    assert 1 <= state.best_epoch <= 8 and state.best_metric == state.best_valid["valid/Recall@10"]
    assert set(state.best_test) == {
        f"test/{m}@{k}" for m in ("Recall", "NDCG", "Precision", "MAP") for k in (5, 10)
    }


@pytest.mark.parametrize("model", ["lightgcn", "emmkgr"])
def test_softmax_with_k_negatives_trains_and_lowers_its_loss(make_trainer, model):
    trainer = make_trainer(model, epochs=6, num_negatives=4, rec_loss="softmax", rec_temperature=0.5)
    assert trainer.model.rec_loss == "softmax" and trainer.model.rec_temperature == 0.5
    users, pos, neg = next(iter(trainer.bpr))
    assert neg.shape == (users.numel(), 4)
    state = trainer.fit()
    first, last = state.history[0], state.history[-1]
    assert "loss/bpr" not in first and {"loss/softmax", "loss/reg"} <= set(first)
    # at the start every one of the 5 candidates is about equally likely: loss near log 5
    assert first["loss/softmax"] == pytest.approx(math.log(5), abs=0.15)
    assert last["loss/softmax"] < first["loss/softmax"] - 0.05


def test_hard_negatives_come_from_the_models_item_graph(make_trainer, dataset, kg):
    from emmkgr_pyg.utils import ConfigError

    with pytest.raises(ConfigError, match="EMMKGR has no item-item graph to draw them from"):
        make_trainer("emmkgr", num_negatives=4, hard_negatives=2)  # the paper's sum fusion has none
    inter = InteractionGraph.from_dataset(dataset)
    valid = RankingEvaluator(inter, *dataset.interactions.part(VALID), ks=(5, 10))
    net = EMMKGR(inter, kg, dim=8, fusion="item_graph")
    config = TrainConfig(**{**BASE, "num_negatives": 4, "hard_negatives": 2, "rec_loss": "softmax"})
    trainer = Trainer(net, inter, valid, valid, config, kg=kg_view(kg))
    graph = {(int(a), int(b)) for a, b in net.item_graph_index.t()}  # neighbour -> item
    users, pos, neg = next(iter(trainer.bpr))
    hard = [(int(n), int(p)) in graph for p, row in zip(pos, neg) for n in row[2:]]
    assert sum(hard) / len(hard) > 0.5
    state = trainer.fit()
    assert state.history[-1]["loss/softmax"] < state.history[0]["loss/softmax"]


def test_score_prior_weight_is_chosen_on_validation_at_the_current_parameters(dataset, kg):
    inter = InteractionGraph.from_dataset(dataset)
    valid = RankingEvaluator(inter, *dataset.interactions.part(VALID), ks=(5, 10))
    test = RankingEvaluator(inter, *dataset.interactions.part(TEST), ks=(5, 10))
    seed_everything(0)
    net = EMMKGR(inter, kg, dim=8, fusion="item_graph")
    config = TrainConfig(**{**BASE, "score_prior": [0.1, 1.0, 10.0]})
    trainer = Trainer(net, inter, valid, test, config, kg=kg_view(kg))
    trainer.fit()
    out = trainer.choose_score_prior()
    kept = net.score_prior_weight  # the model keeps the chosen weight
    emb = net.embed()

    def metric(evaluator, prefix, weight):
        net.set_score_prior(weight, inter)
        return evaluator.evaluate(lambda u: net.score(emb, u), prefix)

    by_weight = {w: metric(valid, "valid/", w)["valid/Recall@10"] for w in (0.0, 0.1, 1.0, 10.0)}
    assert out["valid_by_weight"] == pytest.approx(by_weight)
    best = max(by_weight.values())
    assert out["weight"] == min(w for w, v in by_weight.items() if v == best)  # ties to the smaller
    assert out["valid"]["valid/Recall@10"] == pytest.approx(best)
    assert out["test"] == pytest.approx(metric(test, "test/", out["weight"]))
    assert kept == out["weight"]
    assert len(set(by_weight.values())) > 1  # the prior changes the ranking here


def test_both_prior_weights_are_chosen_together_on_validation(dataset, kg):
    inter = InteractionGraph.from_dataset(dataset)
    valid = RankingEvaluator(inter, *dataset.interactions.part(VALID), ks=(5, 10))
    seed_everything(0)
    net = EMMKGR(inter, kg, dim=8, fusion="item_graph")
    config = TrainConfig(**{**BASE, "epochs": 2, "score_prior": [1.0], "interaction_prior": [0.3, 3.0]})
    trainer = Trainer(net, inter, valid, None, config, kg=kg_view(kg))
    trainer.fit()
    out = trainer.choose_score_prior()
    emb = net.embed()

    def recall(weight, inter_weight):
        net.set_score_prior(weight, inter, inter_weight)
        return valid.evaluate(lambda u: net.score(emb, u), "valid/")["valid/Recall@10"]

    grid = [(w, wi) for w in (0.0, 1.0) for wi in (0.0, 0.3, 3.0)]
    by_pair = {f"{w},{wi}": recall(w, wi) for w, wi in grid}
    assert out["valid_by_weight"] == pytest.approx(by_pair)
    best = max(by_pair.values())
    smallest = min((pair for pair in grid if by_pair[f"{pair[0]},{pair[1]}"] == best), key=sum)
    assert (out["weight"], out["interaction_weight"]) == smallest  # ties to the smaller sum
    assert out["test"] == {} and len(set(by_pair.values())) > 1


def test_score_prior_settings():
    from emmkgr_pyg.utils import ConfigError

    assert TrainConfig(score_prior=0.5).score_prior == (0.5,)
    assert TrainConfig(score_prior=[1, 0.1]).score_prior == (0.1, 1.0)  # ascending: ties go to the smaller
    assert TrainConfig().score_prior is None
    for bad in ([0.1, 0.0], [], "strong", -1):
        with pytest.raises(ConfigError, match="train.score_prior must be null or weights > 0"):
            TrainConfig(score_prior=bad)
    assert TrainConfig(interaction_prior=[3, 0.3]).interaction_prior == (0.3, 3.0)
    assert TrainConfig().interaction_prior is None
    with pytest.raises(ConfigError, match="train.interaction_prior must be null or weights > 0"):
        TrainConfig(interaction_prior=[0.0])


def test_bad_rec_loss_settings_raise():
    with pytest.raises(ValueError, match="train.rec_loss: 'hinge' is not one of"):
        TrainConfig(rec_loss="hinge")
    with pytest.raises(ValueError, match="train.num_negatives must be at least 1"):
        TrainConfig(num_negatives=0)
    with pytest.raises(ValueError, match="train.rec_temperature must be positive, got -1.0"):
        TrainConfig(rec_temperature=-1.0)


def test_same_seed_same_run(make_trainer):
    a, b, c = make_trainer(seed=3), make_trainer(seed=3), make_trainer(seed=4)
    sa, sb, sc = a.fit(), b.fit(), c.fit()
    assert without_seconds(sa.history) == without_seconds(sb.history)
    assert sa.best_valid == sb.best_valid and sa.best_test == sb.best_test
    assert_same_state(a.model, b.model)
    assert without_seconds(sa.history) != without_seconds(sc.history)


@pytest.mark.parametrize("schedule", ["sum", "alternating"])
def test_emmkgr_schedules_report_the_kg_loss(make_trainer, schedule):
    trainer = make_trainer("emmkgr", schedule=schedule, epochs=2, lambda_kg=0.5)
    assert trainer.use_kg
    assert (trainer.kg_optimizer is not None) == (schedule == "alternating")
    state = trainer.fit()
    for record in state.history:
        assert {"loss/bpr", "loss/reg", "loss/kg"} <= set(record)
        assert all(math.isfinite(v) for k, v in record.items() if k.startswith("loss/"))
        assert record["loss/kg"] > 0
    assert state.epoch == 2


def test_lambda_kg_zero_trains_without_kg(make_trainer):
    trainer = make_trainer("emmkgr", epochs=1, lambda_kg=0.0, schedule="alternating")
    assert not trainer.use_kg and trainer.kg_optimizer is None
    assert "loss/kg" not in trainer.fit().history[0]


def test_non_finite_bpr_names_the_epoch_and_the_term(make_trainer, monkeypatch):
    trainer = make_trainer(epochs=1)
    trainer.fit()
    model = trainer.model
    real = model.rec_losses

    def nan_bpr(*args, **kwargs):
        losses = real(*args, **kwargs)
        return {**losses, "bpr": losses["bpr"] * float("nan")}

    monkeypatch.setattr(model, "rec_losses", nan_bpr)
    trainer.cfg.epochs = 3
    with pytest.raises(NonFiniteLossError, match=r"epoch 2: loss term 'bpr' is nan"):
        trainer.fit()
    assert issubclass(NonFiniteLossError, RuntimeError)


@pytest.mark.parametrize("schedule", ["sum", "alternating"])
def test_non_finite_kg_loss_is_named(make_trainer, monkeypatch, schedule):
    trainer = make_trainer("emmkgr", schedule=schedule, epochs=2)
    real = trainer.model.kg_losses
    monkeypatch.setattr(
        trainer.model,
        "kg_losses",
        lambda emb, batch: {k: v + float("inf") for k, v in real(emb, batch).items()},
    )
    with pytest.raises(NonFiniteLossError, match=r"epoch 1: loss term 'kg' is inf"):
        trainer.fit()


def test_diverged_run_raises_a_named_error(make_trainer):
    # lr=1e10: the BPR loss reaches ~1e19 within the first epoch and would stay there
    trainer = make_trainer(epochs=60, lr=1e10)
    with pytest.raises(
        DivergedLossError,
        match=r"epoch 1: loss term '\w+' is .*, over 1e\+06 times its first value .*training diverged\. "
        r"Lower the learning rate \(train\.lr\)",
    ):
        trainer.fit()
    assert issubclass(DivergedLossError, NonFiniteLossError)


def test_divergence_is_measured_against_the_first_value(make_trainer, monkeypatch):
    trainer = make_trainer(epochs=1)
    trainer.fit()
    first = trainer.state.first_loss["bpr"]
    assert 0.5 < first < 0.8  # softplus(0) = 0.69 before any step
    real = trainer.model.rec_losses
    monkeypatch.setattr(
        trainer.model, "rec_losses", lambda *a, **k: {**real(*a, **k), "bpr": torch.tensor(5e5)}
    )
    trainer.cfg.epochs = 2
    assert trainer.fit().epoch == 2  # 5e5 < 1e6 x max(first, 1)
    monkeypatch.setattr(
        trainer.model, "rec_losses", lambda *a, **k: {**real(*a, **k), "bpr": torch.tensor(2e6)}
    )
    trainer.cfg.epochs = 3
    with pytest.raises(DivergedLossError, match=r"epoch 3: loss term 'bpr' is 2e\+06"):
        trainer.fit()
    trainer.cfg.divergence_factor = None  # the guard can be switched off
    assert trainer.fit().epoch == 3


def test_checkpoints_written(make_trainer, tmp_path):
    trainer = make_trainer(epochs=2, out_dir=tmp_path)
    state = trainer.fit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary left
    last = torch.load(tmp_path / "last.pt", weights_only=True)  # tensors and plain containers only
    assert set(last) == {"model", "optimizer", "kg_optimizer", "generator", "torch_rng", "state", "config"}
    assert last["state"]["epoch"] == 2 and last["config"]["epochs"] == 2 and last["kg_optimizer"] is None
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == state.best_epoch
    fresh = make_trainer(init_seed=99).model
    fresh.load_state_dict(best["model"])
    fresh.load_state_dict(last["model"])
    assert_same_state(fresh, trainer.model)
    assert make_trainer(epochs=1).save("last.pt") is None  # no out_dir: nothing written


@pytest.mark.parametrize(
    ("model", "schedule"), [("lightgcn", "sum"), ("emmkgr", "sum"), ("emmkgr", "alternating")]
)
def test_resume_continues_as_one_run(make_trainer, tmp_path, model, schedule):
    whole = make_trainer(model, schedule=schedule, epochs=4, out_dir=tmp_path / "whole")
    whole_state = whole.fit()

    first = make_trainer(model, schedule=schedule, epochs=2, out_dir=tmp_path / "split")
    first.fit()
    # a new process: other initial weights and RNG state, restored from last.pt
    second = make_trainer(model, schedule=schedule, epochs=4, out_dir=tmp_path / "split", init_seed=123)
    second.resume(tmp_path / "split" / "last.pt")
    assert second.state.epoch == 2
    state = second.fit()

    assert state.epoch == 4
    assert without_seconds(state.history) == without_seconds(whole_state.history)
    assert (state.best_epoch, state.best_valid, state.best_test) == (
        whole_state.best_epoch,
        whole_state.best_valid,
        whole_state.best_test,
    )
    assert_same_state(second.model, whole.model)


def test_resume_refuses_changed_settings_unless_forced(make_trainer, tmp_path):
    make_trainer(epochs=2, out_dir=tmp_path).fit()
    changed = make_trainer(epochs=4, lr=0.02, batch_size=16)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"last\.pt was written with other train settings \(batch_size: 32 -> 16; lr: 0\.01 -> 0\.02\); "
        r"restore them, start a new run folder, or use resume=force to override\.$",
    ):
        changed.resume(tmp_path / "last.pt")
    assert changed.state.epoch == 0  # nothing was loaded
    changed.resume(tmp_path / "last.pt", force=True)
    assert changed.state.epoch == 2 and changed.fit().epoch == 4
    make_trainer(epochs=4, out_dir=tmp_path).fit()  # back to the saved settings, to epoch 4
    # ending, pacing and showing the run may change
    harmless = make_trainer(epochs=9, patience=7, max_seconds=60.0, eval_batch_size=3, progress=True)
    harmless.resume(tmp_path / "last.pt", force=False)
    assert harmless.state.epoch == 4


def test_resume_accepts_a_checkpoint_from_before_train_optimizer(make_trainer, tmp_path):
    make_trainer(epochs=2, out_dir=tmp_path).fit()
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["config"]["optimizer"] == "auto"
    del ckpt["config"]["optimizer"]  # as written before the setting existed: dense Adam
    for key in ("num_negatives", "rec_loss", "rec_temperature"):  # before these: BPR, one negative
        del ckpt["config"][key]
    torch.save(ckpt, tmp_path / "last.pt")
    for optimizer in ("auto", "adam"):  # both are Adam under full propagation
        later = make_trainer(epochs=3, optimizer=optimizer)
        later.resume(tmp_path / "last.pt")
        assert later.state.epoch == 2


def test_resume_names_another_model_shape(make_trainer, tmp_path):
    make_trainer(epochs=1, out_dir=tmp_path).fit()
    wider = make_trainer(epochs=2, dim=16, out_dir=tmp_path)
    for force in (False, True):
        with pytest.raises(
            CheckpointMismatchError,
            match=r"holds another model shape \('[\w.]+' is \(\d+, 8\) there, \(\d+, 16\) here\); the model "
            "config changed",
        ):
            wider.resume(tmp_path / "last.pt", force=force)


def test_resume_refuses_a_checkpoint_that_is_not_plain_data(make_trainer, tmp_path):
    trainer = make_trainer(epochs=1, out_dir=tmp_path)
    trainer.fit()
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    ckpt["extra"] = TrainConfig()  # an arbitrary object: loading it would run pickled code
    torch.save(ckpt, tmp_path / "last.pt")
    with pytest.raises(
        CheckpointMismatchError, match=r"last\.pt: not a readable checkpoint \(UnpicklingError"
    ):
        make_trainer(epochs=2).resume(tmp_path / "last.pt")
    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(CheckpointMismatchError, match="not a readable checkpoint .*delete it to start over"):
        make_trainer(epochs=2).resume(tmp_path / "last.pt")


def constant_evaluate(score=0.5):
    return lambda evaluator, prefix: {f"{prefix}Recall@10": score, f"{prefix}NDCG@10": score}


@pytest.mark.parametrize(("eval_every", "expected_epochs"), [(1, 4), (2, 8)])
def test_early_stopping_after_patience_evaluations(make_trainer, monkeypatch, eval_every, expected_epochs):
    trainer = make_trainer(epochs=50, patience=3, eval_every=eval_every)
    monkeypatch.setattr(trainer, "evaluate", constant_evaluate())
    state = trainer.fit()
    # the first evaluation is the best; then `patience` evaluations without improvement
    assert state.epoch == expected_epochs
    assert state.best_epoch == eval_every and state.bad_evals == 3
    evaluated = [r["epoch"] for r in state.history if "valid/Recall@10" in r]
    assert evaluated == list(range(eval_every, expected_epochs + 1, eval_every))


def test_improving_scores_do_not_stop(make_trainer, monkeypatch):
    trainer = make_trainer(epochs=6, patience=2)
    scores = iter([0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.6, 0.6])  # valid, test per best
    monkeypatch.setattr(trainer, "evaluate", lambda ev, prefix: {f"{prefix}Recall@10": next(scores)})
    state = trainer.fit()
    assert state.epoch == 6 and state.best_epoch == 6 and state.bad_evals == 0
    assert state.best_test == {"test/Recall@10": 0.6}


def test_last_epoch_is_always_evaluated(make_trainer):
    state = make_trainer(epochs=5, eval_every=2).fit()
    assert [r["epoch"] for r in state.history if "valid/Recall@10" in r] == [2, 4, 5]


def test_bad_schedule_raises():
    with pytest.raises(ValueError, match="TrainConfig: schedule 'interleaved' is not one of"):
        TrainConfig(schedule="interleaved")
    assert TrainConfig(ks=[5.0, 20]).ks == (5, 20)
    with pytest.raises(ValueError, match=r"metric 'Recall@20' must be .* with k in ks=\(5, 10\)"):
        TrainConfig(ks=[5, 10])
    with pytest.raises(ValueError, match="metric 'AUC@20'"):
        TrainConfig(metric="AUC@20")


def test_to_device_moves_every_field_of_a_batch():
    from emmkgr_pyg.nn.recommender import KGBatch
    from emmkgr_pyg.train.trainer import to_device

    t = torch.arange(3)
    batch = KGBatch(t, t, t, t.view(3, 1), t.view(3, 1))
    moved = to_device(batch, torch.device("meta"))
    assert all(
        getattr(moved, f).device.type == "meta" for f in ("head", "rel", "tail", "neg_head", "neg_tail")
    )
    users, pos, neg = to_device((t, t, t), torch.device("meta"))
    assert (users.device.type, pos.device.type, neg.device.type) == ("meta",) * 3
    assert to_device(t, torch.device("cpu")) is t  # already there: not copied


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
@pytest.mark.parametrize("model", ["lightgcn", "emmkgr"])
def test_training_on_the_gpu_matches_the_cpu(make_trainer, model):
    cpu = make_trainer(model, epochs=2)
    cpu.fit()
    gpu = make_trainer(model, epochs=2)
    gpu.model.cuda()
    gpu.device = torch.device("cuda")
    gpu.optimizer = torch.optim.Adam(gpu.model.parameters(), lr=BASE["lr"])
    gpu.fit()
    assert gpu.state.best_epoch == cpu.state.best_epoch
    for k, v in cpu.state.best_valid.items():
        assert gpu.state.best_valid[k] == pytest.approx(v, abs=1e-3), k


@pytest.mark.parametrize(
    ("schedule", "passes"), [("alternating", None), ("alternating", 2), ("sum", None), ("sum", 3)]
)
def test_kg_passes_per_epoch(make_trainer, monkeypatch, schedule, passes):
    trainer = make_trainer("emmkgr", schedule=schedule, epochs=1, kg_passes_per_epoch=passes)
    n_kg, n_bpr = len(trainer.kg), len(trainer.bpr)
    assert n_kg > 1 and n_bpr > 1
    calls = []
    real = trainer.model.kg_losses
    monkeypatch.setattr(trainer.model, "kg_losses", lambda emb, batch: calls.append(1) or real(emb, batch))
    trainer.fit()
    if schedule == "alternating":
        assert len(calls) == (passes or 1) * n_kg
    elif passes is None:
        assert len(calls) == n_bpr  # one KG batch per BPR batch
    else:
        assert len(calls) == n_bpr * math.ceil(passes * n_kg / n_bpr) >= passes * n_kg
    with pytest.raises(ValueError, match="TrainConfig: kg_passes_per_epoch must be at least 1"):
        TrainConfig(kg_passes_per_epoch=0)

"""Equal tuning with Hydra's Optuna sweeper: every search space composes against its model, a
tiny search records its trials in the sqlite storage, resumes without redoing them, records a
failing trial as failed, and never evaluates the test set."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import emmkgr_pyg.conf
import optuna
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

CONF = Path(emmkgr_pyg.conf.__file__).parent
SEARCHES = sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
MISSING = object()

TINY = [
    "dataset=synthetic_tiny",
    "modality=hashing",
    "train.epochs=2",
    "train.progress=false",
    "hydra.sweep.dir=sw",
]


def search_config(name: str):
    with initialize_config_module(config_module="emmkgr_pyg.conf", version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[f"hparams_search={name}", "cache_dir=/nowhere"],
            return_hydra_config=True,
        )


def test_every_model_has_a_search():
    assert SEARCHES == MODELS


@pytest.mark.parametrize("name", SEARCHES)
def test_search_space_composes_against_its_model(name):
    cfg = search_config(name)
    assert cfg.model.name == name
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("ResumableOptunaSweeper") and sweeper.direction == "maximize"
    # the same budget, caps and blindness to the test set for every model
    assert sweeper.n_trials == 12 and sweeper.n_jobs == 1 and sweeper.max_failure_rate == 1.0
    assert (cfg.train.epochs, cfg.train.patience, cfg.evaluate_test) == (300, 10, False)
    assert cfg.train.metric == "Recall@20"
    assert len(sweeper.params) >= 2
    for key, space in sweeper.params.items():
        assert OmegaConf.select(cfg, key, default=MISSING) is not MISSING, f"{name}: no key {key}"
        values = re.fullmatch(r"choice\((.+)\)", space)
        assert values, f"{name}: {key}: {space}"
        # the model's own default is a number of the same kind as the choices
        default = OmegaConf.select(cfg, key)
        assert isinstance(default, (int, float)), (key, default)


def _trials(folder: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(
        study_name="lightgcn-synthetic_tiny", storage=f"sqlite:///{folder / 'optuna.db'}"
    )
    return study.trials


def test_tiny_search_records_resumes_and_skips_a_failing_trial(run_cli, tmp_path):
    args = ["-m", "hparams_search=lightgcn", *TINY, f"cache_dir={tmp_path / 'c'}"]
    run_cli("emmkgr-train", *args, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    sweep = tmp_path / "sw"
    trials = _trials(sweep)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in trials:
        res = json.loads((sweep / str(t.number) / "results.json").read_text())
        assert res["valid/Recall@20"] == pytest.approx(t.value)
        assert not [k for k in res if k.startswith("test/")]  # the test set is never evaluated
        assert res["config"]["model"]["net"]["num_layers"] == t.params["model.net.num_layers"]
    stamps = {p: p.stat().st_mtime_ns for p in sweep.glob("*/results.json")}

    # resumed with a budget of 3 and a learning rate that fails: one new trial, recorded as failed
    proc = run_cli("emmkgr-train", *args, "hydra.sweeper.n_trials=3", "train.lr=-1", cwd=tmp_path)
    assert proc.returncode == 0
    trials = _trials(sweep)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 3  # drawn without replacement
    assert "Invalid learning rate" in json.loads((sweep / "2" / "error.json").read_text())["error"]
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/results.json")} == stamps  # not redone

    # run again: the budget is spent, nothing runs
    run_cli("emmkgr-train", *args, "hydra.sweeper.n_trials=3", cwd=tmp_path)
    assert len(_trials(sweep)) == 3 and not (sweep / "3").exists()
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(max(t.value for t in trials if t.value is not None))


def test_emmkgr_search_applies_its_parameters(run_cli, tmp_path):
    run_cli(
        "emmkgr-train",
        "-m",
        "hparams_search=emmkgr",
        *TINY,
        "hydra.sweeper.n_trials=1",
        f"cache_dir={tmp_path / 'c'}",
        cwd=tmp_path,
    )
    (trial,) = optuna.load_study(
        study_name="emmkgr-synthetic_tiny", storage=f"sqlite:///{tmp_path / 'sw' / 'optuna.db'}"
    ).trials
    res = json.loads((tmp_path / "sw" / "0" / "results.json").read_text())
    cfg = OmegaConf.create(res["config"])
    for key, value in trial.params.items():
        assert OmegaConf.select(cfg, key) == value, key
    stats = json.loads((tmp_path / "sw" / "0" / "graph_stats.json").read_text())
    top_n = trial.params["graph.top_n"]
    n_text = stats["nodes"]["title"]
    assert (
        stats["edges"]["title__similar_title__title"] >= n_text * top_n
    )  # symmetric kNN: at least n x top_n


def test_grid_size_counts_settings_of_finite_choices():
    from hydra_plugins.emmkgr_pyg_tune.tune_sweeper import grid_size

    assert grid_size(["a=choice(1, 2)", "b=choice(0.1, 0.2, 0.3, 0.4)", "c=5"]) == 8
    assert grid_size(["a=choice(1, 2)", "b=interval(0.1, 0.5)"]) is None
    assert grid_size(["c=5"]) is None


def test_a_grid_smaller_than_the_budget_runs_each_setting_once(run_cli, tmp_path):
    # FREEDOM's MMRec grid has 2 x 4 settings for a budget of 12: TPE would repeat some
    args = ["-m", "hparams_search=freedom", *TINY, "train.epochs=1", f"cache_dir={tmp_path / 'c'}"]
    run_cli("emmkgr-train", *args, cwd=tmp_path)
    trials = optuna.load_study(
        study_name="freedom-synthetic_tiny", storage=f"sqlite:///{tmp_path / 'sw' / 'optuna.db'}"
    ).trials
    settings = {(t.params["model.net.prune_ratio"], t.params["model.net.reg_weight"]) for t in trials}
    assert len(trials) == 8 and len(settings) == 8
    assert {p for p, _ in settings} == {0.8, 0.9} and {r for _, r in settings} == {0.0, 1e-5, 1e-4, 1e-3}


def test_grid_order_is_the_seeds_shuffle_whatever_the_trials_do_to_global_random():
    import random

    from hydra_plugins.emmkgr_pyg_tune.tune_sweeper import ShuffledGridSampler, _ShuffledGridFactory

    space = {"a": [1, 2, 3, 4], "b": [0.1, 0.01, 0.001, 1e-4], "c": [5, 7, 10]}
    factory = _ShuffledGridFactory(seed=3)
    # the plugin recognises a GridSampler factory by sampler.func
    assert isinstance(factory, functools.partial) and factory.func == optuna.samplers.GridSampler
    sampler = factory(space)
    assert isinstance(sampler, ShuffledGridSampler)

    def objective(trial):
        random.seed(0)  # what seed_everything does in every trial of the in-process launcher
        return sum(trial.suggest_categorical(k, v) for k, v in space.items())

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(objective, n_trials=12)
    study.optimize(objective, n_trials=4)  # resumed: goes on along the same order
    order = list(range(48))
    random.Random(3).shuffle(order)
    assert [t.system_attrs["grid_id"] for t in study.trials] == order[:16]
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 16
    # spread over the grid, not neighbours of one setting
    assert {t.params["a"] for t in study.trials} == set(space["a"])
    assert {t.params["c"] for t in study.trials} == set(space["c"])

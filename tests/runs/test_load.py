"""runs.load / runs.artifacts: a run folder from elsewhere runs nothing it names; a run whose
catalogue changed is refused; a split without validation users is refused before training."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from hydra import compose, initialize_config_module

from emmkgr_pyg.data.dataset import TRAIN, VALID, DataError
from emmkgr_pyg.runs import artifacts, load_run, run_training
from emmkgr_pyg.runs import compose as compose_module
from emmkgr_pyg.runs.artifacts import UntrustedRunError, catalog_fingerprint
from emmkgr_pyg.runs.load import TRUSTED_ENV, check_targets


@pytest.fixture
def run_copy(tiny_run_dir, tmp_path):
    return shutil.copytree(tiny_run_dir, tmp_path / "run")


def _edit_results(run, edit):
    path = run / artifacts.RESULTS
    results = json.loads(path.read_text())
    edit(results)
    path.write_text(json.dumps(results))


class _Payload:
    """Pickles to a call of os.system: what a crafted .pt would run on an unchecked load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_config_naming_a_foreign_class_is_refused_and_nothing_runs(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    _edit_results(
        run_copy,
        lambda r: r["config"]["dataset"].update(
            reader={"_target_": "os.system", "command": f"touch {marker}"}
        ),
    )
    with pytest.raises(UntrustedRunError, match=r"dataset\.reader\._target_=os\.system is not a class of"):
        load_run(run_copy)
    assert not marker.exists()


def test_trusted_targets_are_let_through():
    config = {"a": {"_target_": "mypkg.Reader"}, "b": [{"_target_": "emmkgr_pyg.nn.EMMKGR"}]}
    with pytest.raises(UntrustedRunError, match=r"a\._target_=mypkg\.Reader"):
        check_targets(config, "results.json")
    check_targets(config, "results.json", trusted=["mypkg.Reader"])
    check_targets(config, "results.json", trusted=["mypkg."])


def test_trusted_targets_from_the_environment(monkeypatch):
    monkeypatch.setenv(TRUSTED_ENV, "other.Thing,mypkg.")
    check_targets({"x": {"_target_": "mypkg.sub.Reader"}}, "results.json")
    with pytest.raises(UntrustedRunError):
        check_targets({"x": {"_target_": "evil.Reader"}}, "results.json")


def test_embeddings_holding_code_are_refused_and_nothing_runs(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"item": _Payload(marker)}, run_copy / artifacts.EMBEDDINGS)
    with pytest.raises(UntrustedRunError, match="holds more than tensors"):
        artifacts.load_embeddings(run_copy)
    assert not marker.exists()


def test_a_checkpoint_holding_code_is_refused(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": _Payload(marker)}, run_copy / artifacts.BEST)
    with pytest.raises(UntrustedRunError, match="best.pt: holds more than tensors"):
        load_run(run_copy)
    assert not marker.exists()


def test_a_corrupt_results_json_is_named(run_copy):
    (run_copy / artifacts.RESULTS).write_text("{not json")
    with pytest.raises(DataError, match="results.json: not a results.json of emmkgr-train"):
        load_run(run_copy)


def test_a_changed_catalogue_is_refused(run_copy):
    run = load_run(run_copy)
    assert run.results["catalog_fingerprint"] == catalog_fingerprint(run.dataset)
    _edit_results(run_copy, lambda r: r.update(catalog_fingerprint="0" * 64))
    with pytest.raises(DataError, match="changed since this run was trained"):
        load_run(run_copy)
    assert load_run(run_copy, allow_changed_catalog=True).model is not None


def test_the_fingerprint_follows_titles_and_features(run_copy):
    dataset = load_run(run_copy).dataset
    before = catalog_fingerprint(dataset)
    dataset.catalog.title[0] = (dataset.catalog.title[0] or "") + " (new)"
    retitled = catalog_fingerprint(dataset)
    m = next(iter(dataset.catalog.modalities.values()))
    m.features = m.features + 1.0
    assert len({before, retitled, catalog_fingerprint(dataset)}) == 3


def test_a_split_without_validation_users_is_refused(monkeypatch, tmp_path):
    real = compose_module.prepare_dataset

    def without_validation(*args, **kwargs):
        dataset, report = real(*args, **kwargs)
        split = dataset.interactions.split
        split[split == VALID] = TRAIN
        return dataset, report

    monkeypatch.setattr(compose_module, "prepare_dataset", without_validation)
    overrides = ["dataset=synthetic_tiny", "modality=hashing", "model=lightgcn", "train.progress=false"]
    with initialize_config_module(config_module="emmkgr_pyg.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, f"cache_dir={tmp_path / 'c'}"])
    with pytest.raises(DataError, match="no user has a validation interaction"):
        run_training(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / artifacts.BEST).exists()

"""Sweeps through the shipped launchers (``conf/hydra/launcher``): two tiny jobs each, run as a real
``emmkgr-train -m`` subprocess, then ``emmkgr-summarize`` on whatever the launcher wrote."""

import importlib.util
import json

import pytest

TINY = [
    "dataset=synthetic_tiny",
    "modality=hashing",
    "model=lightgcn",
    "train=quick",
    "train.epochs=1",
    "train.progress=false",
    "seed=0,1",
]

LAUNCHERS = {
    # launcher config: (plugin module, the launcher's own files beside the job folders, extra overrides)
    "parallel": ("hydra_plugins.hydra_joblib_launcher", None, ["hydra.launcher.n_jobs=2"]),
    "slurm_local": ("hydra_plugins.hydra_submitit_launcher", ".submitit", []),
    "ray_cluster": (
        "hydra_plugins.hydra_ray_launcher",
        None,
        ["+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false"],
    ),
}


def _require(module: str) -> None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        pytest.skip(f"{module} is not installed (pip install emmkgr-pyg[cluster])")


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_sweep_of_two_jobs_through_a_launcher_is_summarised(run_cli, tmp_path, launcher):
    module, launcher_files, extra = LAUNCHERS[launcher]
    _require(module)
    run_cli(
        "emmkgr-train",
        "-m",
        *TINY,
        f"hydra/launcher={launcher}",
        *extra,
        "hydra.sweep.dir=sweep",
        f"cache_dir={tmp_path / 'c'}",
        cwd=tmp_path,
    )
    sweep = tmp_path / "sweep"
    results = [json.loads((sweep / job / "results.json").read_text()) for job in ("0", "1")]
    assert [r["seed"] for r in results] == [0, 1]
    assert all(r["epochs"] == 1 and 0 <= r["test/Recall@20"] <= 1 for r in results)
    if launcher_files:
        assert list((sweep / launcher_files).rglob("*_result.pkl")), f"no {launcher_files} results"

    out = run_cli("emmkgr-summarize", "sweep", cwd=tmp_path).stdout
    assert "| (all runs)" in out
    (row,) = json.loads((sweep / "summary.json").read_text())
    assert row["n"] == 2 and row["failed"] == 0
    mean = sum(r["test/Recall@20"] for r in results) / 2
    assert row["test/Recall@20"][0] == pytest.approx(mean)


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_launcher_config_composes(launcher):
    from hydra import compose, initialize_config_module

    _require(LAUNCHERS[launcher][0])
    with initialize_config_module(version_base="1.3", config_module="emmkgr_pyg.conf"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    target = cfg.hydra.launcher._target_
    assert target.startswith(LAUNCHERS[launcher][0] + "."), target

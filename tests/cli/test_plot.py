import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["dataset=synthetic_tiny", "modality=hashing", "train=quick", "train.epochs=3", "train.progress=false"]


def tiny_run(tmp_path_factory) -> Path:
    """A 3-epoch E-MMKGR run on synthetic_tiny, trained once per session and copied per module."""
    root = tmp_path_factory.getbasetemp() / "tiny_emmkgr"
    if not (root / "run" / "embeddings.pt").is_file():
        root.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "emmkgr-train"
        args = [str(exe), *TINY, "model=emmkgr", "hydra.run.dir=run", f"cache_dir={root / 'cache'}"]
        proc = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"training the tiny run failed:\n{proc.stdout}\n{proc.stderr}"
    copy = tmp_path_factory.mktemp("plot") / "run"
    shutil.copytree(root / "run", copy)
    return copy


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def test_plot_writes_a_png(run_cli, run_dir, tmp_path):
    out = run_cli(
        "emmkgr-plot",
        f"run_dir={run_dir}",
        "max_items=80",
        "max_iter=250",
        f"out={tmp_path / 'p.png'}",
        cwd=tmp_path,
    ).stdout
    png = tmp_path / "p.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in out and "category purity@10" in out
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 1.5 * im.size[1]  # two panels side by side


def test_plot_needs_a_trained_run(run_cli, tmp_path):
    proc = run_cli("emmkgr-plot", f"run_dir={tmp_path}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "is not a trained run" in proc.stderr

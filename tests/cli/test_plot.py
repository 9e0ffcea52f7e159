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

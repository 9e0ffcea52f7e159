import json

import torch


def test_build_graph_writes_graph_and_stats(run_cli, tmp_path):
    run_cli(
        "emmkgr-build-graph",
        "dataset=synthetic_tiny",
        "modality=hashing",
        "out_dir=g",
        f"cache_dir={tmp_path / 'cache'}",
        "graph.top_n=5",
        "progress=false",
        cwd=tmp_path,
    )
    stats = json.loads((tmp_path / "g" / "graph_stats.json").read_text())
    data = torch.load(tmp_path / "g" / "graph.pt", weights_only=False)
    assert stats["nodes"] == {t: int(data[t].num_nodes) for t in data.node_types}
    assert stats["nodes"]["item"] == 150
    n_img = stats["nodes"]["image"]
    assert stats["edges"]["item__has_image__image"] == n_img == stats["edges"]["image__image_of__item"]
    assert stats["edges"]["image__similar_image__image"] >= 5 * n_img  # symmetrised top-5
    assert set(stats["knn_seconds"]) == {"title", "description", "review", "image"}


def test_negative_top_n_is_one_line(run_cli, tmp_path):
    proc = run_cli(
        "emmkgr-build-graph",
        "dataset=synthetic_tiny",
        "modality=hashing",
        "out_dir=g",
        f"cache_dir={tmp_path / 'cache'}",
        "graph.top_n=-3",
        "progress=false",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [
        "emmkgr-build-graph: build_emmkg: graph.top_n=-3 is negative; give the number of neighbours "
        "per modality node (the paper uses 10), or 0 for no similarity edges."
    ]
    assert not (tmp_path / "g").exists()


def test_build_graph_on_office(run_cli, shared, tmp_path):
    root = shared("amazon-office-2014")
    run_cli(
        "emmkgr-build-graph",
        "dataset=amazon_office",
        f"dataset.root={root}",
        "modality=hashing",
        "out_dir=g",
        f"cache_dir={tmp_path / 'cache'}",
        "graph.knn.symmetric=false",
        "progress=false",
        cwd=tmp_path,
    )
    stats = json.loads((tmp_path / "g" / "graph_stats.json").read_text())
    assert stats["nodes"] == {"item": 2420, "title": 2417, "description": 1781, "attributes": 2420}
    for m, n in (("title", 2417), ("description", 1781), ("attributes", 2420)):
        assert stats["edges"][f"item__has_{m}__{m}"] == n
        assert stats["edges"][f"{m}__{m}_of__item"] == n
        assert stats["edges"][f"{m}__similar_{m}__{m}"] == 10 * n  # directed top-10 (Eq. 2)
    assert len(stats["edges"]) == 9

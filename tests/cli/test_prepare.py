import json

import numpy as np


def test_prepare_office_counts_splits_and_modalities(run_cli, shared, tmp_path):
    # the real Office files through the real entry point; the hashing encoder keeps it quick (the
    # MiniLM path is the next test, on the titles alone: encoding every description took ~2 min)
    root = shared("amazon-office-2014")
    args = ["dataset=amazon_office", f"dataset.root={root}", "modality=hashing", "progress=false"]
    run_cli(
        "emmkgr-prepare",
        *args,
        f"out_dir={tmp_path / 'office'}",
        f"cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    stats = json.loads((tmp_path / "office" / "stats.json").read_text())
    assert (stats["n_users"], stats["n_items"], stats["n_interactions"]) == (4905, 2420, 53258)
    assert stats["splits"] == {"train": 40877, "valid": 5880, "test": 6501}
    assert stats["modalities"] == {
        "title": {"kind": "text", "dim": 256, "n_items_with": 2417},
        "description": {"kind": "text", "dim": 256, "n_items_with": 1781},
        "attributes": {"kind": "text", "dim": 256, "n_items_with": 2420},
    }


def test_prepare_office_titles_with_minilm_and_its_cache(run_cli, shared, tmp_path):
    root = shared("amazon-office-2014")
    args = [
        "dataset=amazon_office",
        f"dataset.root={root}",
        "modality.include=[title]",
        f"out_dir={tmp_path / 'office'}",
        f"cache_dir={tmp_path / 'cache'}",
        "progress=false",
    ]
    proc = run_cli("emmkgr-prepare", *args, cwd=tmp_path, threads=2)
    stats = json.loads((tmp_path / "office" / "stats.json").read_text())
    assert stats["modalities"] == {"title": {"kind": "text", "dim": 384, "n_items_with": 2417}}
    assert "SentenceTransformerEncoder" in proc.stdout
    feats = np.load(tmp_path / "office" / "title_feat.npy")
    assert feats.shape == (2420, 384) and np.isfinite(feats).all()
    # MiniLM vectors come out unit-length (the items without a title are the zero rows)
    norms = np.linalg.norm(feats, axis=1)
    assert np.sum(norms > 0.5) == 2417 and np.allclose(norms[norms > 0.5], 1.0, atol=1e-3)
    # the second run reuses the cached features
    again = run_cli("emmkgr-prepare", *args, cwd=tmp_path)
    assert again.stdout.count("| True ") == 1
    np.testing.assert_array_equal(np.load(tmp_path / "office" / "title_feat.npy"), feats)


def test_prepare_generated_default_and_bad_root(run_cli, tmp_path):
    run_cli(
        "emmkgr-prepare",
        "dataset=synthetic_tiny",
        "modality=hashing",
        "out_dir=prep",
        f"cache_dir={tmp_path / 'cache'}",
        "progress=false",
        cwd=tmp_path,
    )
    stats = json.loads((tmp_path / "prep" / "stats.json").read_text())
    assert stats["name"] == "synthetic_tiny" and set(stats["modalities"]) == {
        "title",
        "description",
        "review",
        "image",
    }
    bad = run_cli(
        "emmkgr-prepare",
        "dataset=amazon_office",
        f"dataset.root={tmp_path / 'nowhere'}",
        "modality=hashing",
        "out_dir=x",
        cwd=tmp_path,
        check=False,
    )
    # one line naming the file and the fix, no stack trace
    assert bad.returncode == 2 and "Traceback" not in bad.stderr + bad.stdout
    (line,) = bad.stderr.strip().splitlines()
    assert line == (
        f"emmkgr-prepare: LcRecJsonReader: missing file {tmp_path / 'nowhere' / 'Office.inter.json'} "
        "({user: [item, ...]}). This format expects Office.inter.json, Office.item.json in the dataset "
        f"folder (dataset.root={tmp_path / 'nowhere'})."
    )
    assert not (tmp_path / "x").exists()

import numpy as np
import pytest
import torch

from emmkgr_pyg.data.dataset import DataError
from emmkgr_pyg.data.encoders import (
    HashingTextEncoder,
    ImageEncoder,
    PrecomputedEncoder,
    SentenceTransformerEncoder,
    SmallCNN,
)


def test_hashing_encoder_is_deterministic_and_lexical():
    enc = HashingTextEncoder(dim=64)
    a = enc.encode(["red steel pan", "red steel pan", "blue cotton shirt", ""], progress=False)
    assert a.shape == (4, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a[0], a[1])
    np.testing.assert_allclose(np.linalg.norm(a[:3], axis=1), 1.0, rtol=1e-6)
    assert np.all(a[3] == 0)
    assert a[0] @ a[1] > a[0] @ a[2]
    assert enc.identity() != HashingTextEncoder(dim=32).identity()


@pytest.mark.slow
def test_bundled_minilm_offline():
    enc = SentenceTransformerEncoder(model="bundled", batch_size=8)
    x = enc.encode(["a red frying pan", "a crimson skillet", "printer toner cartridge"], progress=False)
    assert x.shape == (3, 384)
    cos = x @ x.T / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
    assert cos[0, 1] > cos[0, 2]
    assert enc.identity()["model"] == "all-MiniLM-L6-v2"


def test_sentence_transformer_refuses_remote_names():
    with pytest.raises(DataError, match="not a local folder"):
        SentenceTransformerEncoder(model="sentence-transformers/all-mpnet-base-v2").load()


def test_image_encoder_with_a_random_cnn(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, size=(20 + i, 30, 3), dtype=np.uint8)).save(p)
        paths.append(p.name)
    enc = ImageEncoder(SmallCNN(out_dim=16, seed=3), image_size=32, batch_size=2, root=str(tmp_path))
    x = enc.encode(paths, progress=False)
    assert x.shape == (5, 16) and np.isfinite(x).all()
    np.testing.assert_array_equal(x, enc.encode(paths, progress=False))
    # another random network is another encoder, for the cache
    assert enc.identity() != ImageEncoder(SmallCNN(out_dim=16, seed=4), image_size=32).identity()
    with pytest.raises(DataError, match="image file .*missing.png not found"):
        enc.encode(["missing.png"], progress=False)


def test_small_cnn_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = SmallCNN(seed=1)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = SmallCNN(seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_precomputed_rows(tmp_path):
    np.save(tmp_path / "f.npy", np.arange(12, dtype=np.float32).reshape(4, 3))
    enc = PrecomputedEncoder(str(tmp_path / "f.npy"))
    np.testing.assert_array_equal(enc.load_rows(np.array([1, 3]), 4), [[3, 4, 5], [9, 10, 11]])
    with pytest.raises(DataError, match="4 rows, expected 5"):
        enc.load_rows(np.array([0]), 5)


def test_precomputed_file_errors_name_the_file(tmp_path):
    path = tmp_path / "f.npy"
    enc = PrecomputedEncoder(str(path))
    np.save(path, np.arange(4, dtype=np.float32))
    with pytest.raises(
        DataError, match=r"f\.npy: an array of shape \(4,\); features must be 2-D \[4 items, dim\]"
    ):
        enc.load_rows(np.array([0]), 4)
    feats = np.ones((4, 2), dtype=np.float32)
    feats[3, 0] = np.inf
    np.save(path, feats)
    with pytest.raises(DataError, match=r"f\.npy: NaN or inf features in 1 rows \(first: row 3\)"):
        enc.load_rows(np.array([1, 3]), 4)
    assert enc.load_rows(np.array([0, 1]), 4).shape == (2, 2)  # the bad row is not asked for
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"f\.npy: not a readable \.npy file of features \(EOFError"):
        enc.load_rows(np.array([0]), 4)

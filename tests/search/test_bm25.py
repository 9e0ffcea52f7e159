import numpy as np
import pytest

from emmkgr_pyg.search.bm25 import BM25Search, bm25_tokens, indexed_text

DOCS = ["Red pen with ink", None, "blue paper pad", "red red paper"]


def lucene(tf, df, dl, n=4, avgdl=9 / 4, k1=1.5, b=0.75):
    return np.log(1 + (n - df + 0.5) / (df + 0.5)) * tf / (tf + k1 * (1 - b + b * dl / avgdl))


def test_bm25_scores_by_hand():
    got = BM25Search(DOCS).scores(["red paper", "the", "zebra"])
    # red: in items 0 and 3 (twice in 3); paper: in items 2 and 3; every document has 3 tokens
    want = [lucene(1, 2, 3), 0.0, lucene(1, 2, 3), lucene(2, 2, 3) + lucene(1, 2, 3)]
    np.testing.assert_allclose(got[0], want, rtol=1e-5)
    assert not got[1].any() and not got[2].any()  # a stop word, a word no item has
    assert bm25_tokens("The non-stick Pan") == ["non-stick", "pan"]


def test_indexed_text_joins_the_text_modalities(hand_dataset):
    from emmkgr_pyg.data.dataset import Modality

    ds = hand_dataset
    ds.modalities["desc"] = Modality("desc", "text", np.array([0, 2]), raw=["a pen", "a pad"])
    ds.modalities["name"] = Modality("name", "text", np.array([2]), raw=["blue"])
    got = indexed_text(ds, ["desc", "name", "image"])
    assert got[0] == "a pen" and got[1] is None and got[2] == "a pad \n blue"
    with pytest.raises(KeyError):
        indexed_text(ds, ["nope"])

import numpy as np

from emmkgr_pyg.search.topk import pad_top_k, top_k


def test_top_k_is_best_first_with_ties_by_lower_index():
    scores = np.array([[0.5, 0.9, 0.5, 0.1, 0.9], [3.0, 2.0, 1.0, 0.0, -1.0]])
    assert top_k(scores, 3).tolist() == [[1, 4, 0], [0, 1, 2]]
    assert top_k(scores, 5).tolist() == [[1, 4, 0, 2, 3], [0, 1, 2, 3, 4]]
    assert top_k(scores, 0).shape == (2, 0)
    ties = np.round(np.random.default_rng(0).random((50, 30)), 1)  # ties at every boundary
    ties[:, [3, 7]] = -np.inf
    for k in (1, 5, 29, 30):
        np.testing.assert_array_equal(top_k(ties, k), np.argsort(-ties, axis=1, kind="stable")[:, :k])


def test_padding_fills_missing_results_with_minus_one_and_minus_inf():
    scores, pos = pad_top_k(np.array([[0.7, 0.2]]), np.array([[4, -1]]), 4)
    assert pos.tolist() == [[4, -1, -1, -1]]
    assert scores[0, 0] == np.float32(0.7) and np.isneginf(scores[0, 1:]).all()

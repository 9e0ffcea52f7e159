import numpy as np
import pytest
import torch
from omegaconf import open_dict

from emmkgr_pyg.eval.query_store import query_sets
from emmkgr_pyg.eval.search_eval import METRIC_NAMES, evaluate
from emmkgr_pyg.eval.search_queries import QuerySetConfig
from emmkgr_pyg.runs import artifacts, load_run
from emmkgr_pyg.runs.search import (
    COMPETITORS,
    RunSearches,
    evaluate_run,
    leakfree_inputs,
    open_index,
    run_embeddings,
)
from emmkgr_pyg.search import (
    INDEX_FILE,
    BM25Search,
    ItemIndex,
    ItemMeta,
    KGSearch,
    QueryEncoder,
    SearchError,
    VectorBaseline,
    rrf,
)


def _meta(n):
    return ItemMeta([f"i{i}" for i in range(n)], [None] * n, [None] * n, [[] for _ in range(n)])


@pytest.fixture
def vectors():
    return np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)


def _fake_run(folder, vectors):
    folder.mkdir(parents=True, exist_ok=True)
    reversed_rows = torch.from_numpy(vectors[::-1].copy())
    artifacts.save_embeddings(
        folder, {artifacts.MM_ITEM: torch.from_numpy(vectors), artifacts.ITEM: reversed_rows}
    )
    return folder


def test_run_embeddings_are_the_saved_matrices(vectors, tmp_path):
    run = _fake_run(tmp_path / "run", vectors)
    np.testing.assert_array_equal(run_embeddings(run), vectors)
    np.testing.assert_array_equal(run_embeddings(run, artifacts.ITEM), vectors[::-1])


def test_open_index_reuses_the_saved_index_only_for_the_same_embeddings(vectors, tmp_path):
    run = _fake_run(tmp_path / "run", vectors)
    built = open_index(run, lambda: _meta(60))
    assert (run / INDEX_FILE).is_file() and built.embedding == artifacts.MM_ITEM

    def no_meta():
        raise AssertionError("the saved index should have been loaded")

    assert open_index(run, no_meta).fingerprint == built.fingerprint
    calls = []
    other = open_index(run, lambda: calls.append(1) or _meta(60), embedding=artifacts.ITEM)
    assert calls and other.embedding == artifacts.ITEM
    open_index(run, lambda: calls.append(2) or _meta(60), embedding=artifacts.ITEM, rebuild=True)
    open_index(run, lambda: calls.append(3) or _meta(60), embedding=artifacts.ITEM, kind="hnsw")
    assert calls == [1, 2, 3]


def test_run_embeddings_errors_name_the_fix(vectors, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a trained run"):
        run_embeddings(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a trained run"):
        run_embeddings(tmp_path, "H_mm_title")  # a folder that is no run is reported first
    run = _fake_run(tmp_path / "run", vectors)
    with pytest.raises(SearchError, match="search.embedding=H_mm_title: choose"):
        run_embeddings(run, "H_mm_title")


def test_an_embedding_the_run_lacks_names_what_it_has(tmp_path):
    artifacts.save_embeddings(tmp_path, {artifacts.ITEM: torch.ones(3, 2), artifacts.USER: torch.ones(4, 2)})
    with pytest.raises(SearchError, match=r"has \['item', 'user'\].*model=emmkgr"):
        run_embeddings(tmp_path, artifacts.MM_ITEM)


def test_evaluate_run_scores_every_method_as_their_own_encoders_do(tiny_run_dir, tmp_path):
    run = load_run(tiny_run_dir)
    cfg = QuerySetConfig(
        n_fine=12, n_category=4, n_attribute=4, min_targets=3, max_share=0.2, protocol="lookup"
    )
    sets = query_sets(run.dataset, cfg, tmp_path)
    got = evaluate_run(run, sets, {"mapping": "paper"}, batch_size=5)
    # the same rankings, each query encoded on its own (evaluate_run encodes every text once)
    qenc = QueryEncoder.from_run(run, "paper", "all")
    index = ItemIndex(run_embeddings(tiny_run_dir), ItemMeta.from_catalog(run.dataset.catalog))
    baseline = VectorBaseline.from_dataset(run.dataset, qenc.text_modalities)
    bm25 = BM25Search.from_dataset(run.dataset, qenc.text_modalities)
    ids = run.dataset.catalog.item_ids

    def dense(b):
        return baseline.scores(qenc.raw_text([q.text for q in b]))

    def lexical(b):
        return bm25.scores([q.text for q in b])

    for s, queries in sets.items():
        want = {
            "emmkgr": evaluate(lambda b: index.scores(qenc.encode_text([q.text for q in b])), queries, ids),
            "bm25": evaluate(lexical, queries, ids),
            "vector_baseline": evaluate(dense, queries, ids),
            "hybrid": evaluate(lambda b: rrf([lexical(b), dense(b)], 60), queries, ids),
        }
        assert list(got[s]) == ["emmkgr", *COMPETITORS]
        for method, values in want.items():
            assert list(got[s][method]) == list(METRIC_NAMES)
            assert got[s][method] == pytest.approx(values, abs=1e-9), (s, method)
        assert got[s]["vector_baseline"]["MRR"] > 0 and got[s]["bm25"]["MRR"] > 0


def test_evaluate_run_kg_scorer_and_bm25_fusion(tiny_run_dir, tmp_path):
    run = load_run(tiny_run_dir)
    cfg = QuerySetConfig(
        n_fine=8, n_category=3, n_attribute=3, min_targets=3, max_share=0.2, protocol="lookup"
    )
    sets = query_sets(run.dataset, cfg, tmp_path)
    search = {"scorer": "kg", "kg_node": "projected", "fuse_bm25": True, "rrf_k": 10}
    got = evaluate_run(run, sets, search)
    runs = RunSearches(run, [q.text for qs in sets.values() for q in qs])
    kg = KGSearch.from_run(run, run_embeddings(tiny_run_dir), "projected")
    qenc = QueryEncoder.from_run(run, "paper", "all")
    ids = run.dataset.catalog.item_ids
    for s, queries in sets.items():
        want = evaluate(
            lambda b: rrf([runs.bm25(b), kg.scores(qenc.raw_text([q.text for q in b]))], 10), queries, ids
        )
        assert got[s]["emmkgr"] == pytest.approx(want, abs=1e-9)
    # BM25 at a lower RRF weight: w / (k + rank) for BM25's ranks, 1 / (k + rank) for the other's
    light = evaluate_run(run, sets, {**search, "bm25_weight": 0.25})
    batch = [q for qs in sets.values() for q in qs]
    lex, kgs = runs.bm25(batch), kg.scores(qenc.raw_text([q.text for q in batch]))
    by_hand = np.zeros(lex.shape)
    for row in range(len(batch)):
        for scores, w in ((lex[row], 0.25), (kgs[row], 1.0)):
            order = np.argsort(-scores, kind="stable")
            for r, item in enumerate(order, 1):
                by_hand[row, item] += w / (10 + r) if np.isfinite(scores[item]) else 0.0
    fused = runs.emmkgr({**search, "bm25_weight": 0.25})(batch)
    assert fused == pytest.approx(by_hand, abs=1e-12)
    assert not np.allclose(fused, runs.emmkgr(search)(batch))
    for s, queries in sets.items():
        want = evaluate(lambda b: by_hand[[batch.index(q) for q in b]], queries, ids)
        assert light[s]["emmkgr"] == pytest.approx(want, abs=1e-9)
    with pytest.raises(SearchError, match="scorer=dot: choose one of"):
        evaluate_run(run, sets, {"scorer": "dot"})
    for bad in (0, -1.0, "abc", True):
        with pytest.raises(
            SearchError, match=f"search.bm25_weight={bad}: give BM25's positive fusion weight"
        ):
            evaluate_run(run, sets, {**search, "bm25_weight": bad})
    # z-score fusion: w * z(BM25) + z(KG) per query, each over its finite scores (rrf_k unused)
    z = runs.emmkgr({**search, "fusion": "zscore", "bm25_weight": 0.5})(batch)
    zs = {}
    for name, scores in (("lex", lex), ("kg", kgs)):
        zs[name] = np.zeros(scores.shape)
        for row in range(len(batch)):
            row_scores = scores[row].astype(np.float64)
            x = row_scores[np.isfinite(row_scores)]
            zs[name][row] = (row_scores - x.mean()) / max(x.std(), 1e-9)
    assert np.isfinite(lex).all() and np.isfinite(kgs).all()
    assert z == pytest.approx(0.5 * zs["lex"] + zs["kg"], abs=1e-9)
    with pytest.raises(SearchError, match=r"search.fusion=max: choose one of \['rrf', 'zscore'\]"):
        evaluate_run(run, sets, {**search, "fusion": "max"})


def test_leakfree_inputs_of_a_synthetic_run(tiny_run_dir):
    run = load_run(tiny_run_dir)
    inputs = leakfree_inputs(run)
    name, texts = inputs.fine_source
    # one review per validation and test interaction; the run indexes no category text
    assert name == "heldout_review" and len(texts) == int((run.dataset.interactions.split != 0).sum())
    assert not inputs.categories_indexed and len(inputs.indexed) == run.dataset.n_items
    review = run.dataset.modalities["review"]
    i = int(review.item_index[0])
    assert review.raw[0] in inputs.indexed[i]
    # a graph with category entity nodes holds the categories: no coarse category set
    with open_dict(run.cfg):
        run.cfg.graph.entities = ["brand", "category"]
    assert leakfree_inputs(run).categories_indexed


@pytest.mark.parametrize("space", ["H_mm_item", "item", "raw"])
def test_evaluate_run_with_feedback_is_the_configured_search_then_feedback(tiny_run_dir, tmp_path, space):
    from emmkgr_pyg.search.feedback import with_feedback

    run = load_run(tiny_run_dir)
    cfg = QuerySetConfig(
        n_fine=8, n_category=3, n_attribute=3, min_targets=3, max_share=0.2, protocol="lookup"
    )
    sets = query_sets(run.dataset, cfg, tmp_path)
    base = {"mapping": "paper", "carry_raw": 1.0, "fuse_bm25": True, "rrf_k": 20}
    keep = 1 if space == "raw" else 0
    search = {**base, "feedback": space, "feedback_k": 3, "feedback_weight": 0.5, "feedback_keep": keep}
    got = evaluate_run(run, sets, search)
    runs = RunSearches(run, [q.text for qs in sets.values() for q in qs])
    assert not RunSearches.is_plain({"feedback": space})
    if space == "raw":  # the raw text vectors side by side, each block scaled by 1/sqrt(|M|)
        n = run.dataset.n_items
        blocks = []
        for m in runs.mods:
            x = np.zeros((n, runs.baseline.features[m].shape[1]), np.float32)
            x[run.dataset.modalities[m].item_index] = runs.baseline.features[m]
            blocks.append(x / np.sqrt(len(runs.mods)))
        vectors = np.concatenate(blocks, 1)
    else:
        vectors = run_embeddings(tiny_run_dir, space)
    assert runs.feedback_space(space) == pytest.approx(vectors)
    first = runs.emmkgr(base)
    ids = run.dataset.catalog.item_ids
    for s, queries in sets.items():
        want = evaluate(with_feedback(first, vectors, 3, 0.5, 20, keep), queries, ids)
        assert got[s]["emmkgr"] == pytest.approx(want, abs=1e-9)
        batch = list(queries)
        assert not np.allclose(with_feedback(first, vectors, 3, 0.5, 20, keep)(batch), first(batch))
    with pytest.raises(SearchError, match="feedback=H_item: choose one of"):
        evaluate_run(run, sets, {**base, "feedback": "H_item"})
    with pytest.raises(SearchError, match="search.feedback_k=0: average at least one"):
        evaluate_run(run, sets, {**search, "feedback_k": 0})


def test_dense_first_stage_reranked_in_the_learned_space(tiny_run_dir, tmp_path):
    from emmkgr_pyg.search.feedback import with_feedback

    run = load_run(tiny_run_dir)
    cfg = QuerySetConfig(
        n_fine=8, n_category=3, n_attribute=3, min_targets=3, max_share=0.2, protocol="lookup"
    )
    sets = query_sets(run.dataset, cfg, tmp_path)
    search = {"scorer": "dense", "fuse_bm25": True, "feedback": "H_mm_item", "feedback_k": 5}
    got = evaluate_run(run, sets, search)
    runs = RunSearches(run, [q.text for qs in sets.values() for q in qs])
    first = RunSearches.fused([runs.bm25, runs.vector_baseline])  # the hybrid competitor
    vectors = run_embeddings(tiny_run_dir, "H_mm_item")
    ids = run.dataset.catalog.item_ids
    for s, queries in sets.items():
        assert got[s]["emmkgr"] == pytest.approx(evaluate(with_feedback(first, vectors, 5), queries, ids))
    assert not RunSearches.is_plain({"scorer": "dense"})

"""Search on a trained run folder: its item embeddings (:data:`.artifacts.EMBEDDINGS`), the
faiss index saved beside it, and the search evaluation of a loaded run: E-MMKGR (the configured
search) against the searches a user would pick instead (BM25, the dense vector baseline and their
reciprocal rank fusion) on each query set; :func:`leakfree_inputs` says what the leak-free query
sets may be built from."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data.prepared import load_dataset
from ..eval.leakfree_queries import LeakFreeInputs
from ..eval.search_eval import evaluate
from ..eval.search_queries import SearchQuery
from ..graph.knn import normalize_rows
from ..search.baseline import VectorBaseline
from ..search.bm25 import BM25Search, indexed_text
from ..search.errors import SearchError
from ..search.feedback import FEEDBACK_SPACES, with_feedback
from ..search.fusion import FUSIONS, RRF_K, fuse, is_weight
from ..search.index import INDEX_FILE, META_FILE, ItemIndex
from ..search.kg import KGSearch
from ..search.meta import ItemMeta
from ..search.query import QueryEncoder
from ..utils import stable_hash
from . import artifacts
from .load import TrainedRun

log = logging.getLogger(__name__)


def run_embeddings(run_dir: str | Path, embedding: str = artifacts.MM_ITEM) -> np.ndarray:
    """One item embedding matrix of a trained run (one of :data:`.artifacts.SEARCHABLE`),
    ``[N, d]``."""
    saved = artifacts.load_embeddings(run_dir)  # first: a folder that is no run is reported as such
    if embedding not in artifacts.SEARCHABLE:
        raise SearchError(f"search.embedding={embedding}: choose one of {list(artifacts.SEARCHABLE)}.")
    if embedding not in saved:
        raise SearchError(
            f"search.embedding={embedding}: {Path(run_dir) / artifacts.EMBEDDINGS} has {sorted(saved)}. "
            f"Use one of {list(artifacts.SEARCHABLE)} the run has ({artifacts.MM_ITEM} needs a run "
            "trained with model=emmkgr)."
        )
    return saved[embedding].detach().float().numpy()


def open_index(
    run_dir: str | Path,
    meta: ItemMeta | Callable[[], ItemMeta],
    embedding: str = artifacts.MM_ITEM,
    kind: str = "exact",
    rebuild: bool = False,
    save: bool = True,
    **kwargs: Any,
) -> ItemIndex:
    """The run's item index: the saved one (``search_index.faiss``) when it indexes these very
    embeddings (same fingerprint, embedding and kind; cold-start items it holds are kept), else a
    new one, saved beside the run when ``save``.

    Args:
        run_dir: a trained run folder.
        meta: the items' metadata, or a function giving it (called only when building).
        embedding: one of :data:`.artifacts.SEARCHABLE` (default :data:`.artifacts.MM_ITEM`).
        kind: ``exact`` or ``hnsw``.
        rebuild: build even when a matching index is saved.
        save: write a newly built index beside the run.
        kwargs: further :class:`ItemIndex` arguments (``hnsw_m``, ``ef_search``).
    """
    run_dir = Path(run_dir)
    vectors = run_embeddings(run_dir, embedding)
    fingerprint = stable_hash(normalize_rows(vectors))
    if not rebuild and (run_dir / META_FILE).is_file() and (run_dir / INDEX_FILE).is_file():
        info = json.loads((run_dir / META_FILE).read_text())
        saved = (info.get("fingerprint"), info.get("embedding"), info.get("kind"))
        if saved == (fingerprint, embedding, kind):
            return ItemIndex.load(run_dir)
        log.info("%s indexes other embeddings (%s, %s); rebuilding it", INDEX_FILE, *saved[1:])
    meta = meta() if callable(meta) else meta
    index = ItemIndex(vectors, meta, embedding, kind, fingerprint=fingerprint, **kwargs)
    if save:
        index.save(run_dir)
    return index


#: the competitors of E-MMKGR search, in table order
COMPETITORS = ("bm25", "vector_baseline", "hybrid")
#: ``search.scorer``: cosine with the mapped query (Eq. 7), link prediction through ``<m>_of``, or
#: ``dense``: the vector baseline as a first stage that E-MMKGR's feedback re-ranks (an E-MMKGR search
#: only with ``feedback`` in the run's item space; in ``raw`` it is dense search with feedback)
SCORERS = ("cosine", "kg", "dense")

ScoreFn = Callable[[list[SearchQuery]], np.ndarray]


def text_modalities(run: TrainedRun) -> list[str]:
    """The run's text modalities: what every method under test indexes and encodes."""
    return [m for m, mod in run.dataset.modalities.items() if mod.kind == "text"]


def leakfree_inputs(run: TrainedRun, min_share: float = 0.5) -> LeakFreeInputs:
    """What the run's methods index (its text modalities, joined per item) and the unindexed text
    leak-free fine queries come from: the reviews of held-out interactions where the dataset's
    reader has them (``heldout_reviews``), else the ``description`` when the run does not index it.
    Category text counts as indexed when some indexed modality holds every level of an item's
    category path for at least ``min_share`` of the items (the ``attributes`` modality), and when
    the run's graph links items to category entity nodes (``graph.entities``: a coarse query's
    targets would be exactly the items of one entity)."""
    from hydra.utils import instantiate

    mods = text_modalities(run)
    fields = {m: indexed_text(run.dataset, [m]) for m in mods}
    cats = run.dataset.catalog.categories
    with_path = [i for i, p in enumerate(cats) if p]

    def holds_paths(texts: list[str | None]) -> bool:
        hits = sum(bool(texts[i]) and all(c.lower() in texts[i].lower() for c in cats[i]) for i in with_path)
        return bool(with_path) and hits >= min_share * len(with_path)

    entities = run.cfg.get("graph", {}).get("entities") or []
    categories_indexed = "category" in entities or any(holds_paths(t) for t in fields.values())
    reader = instantiate(run.cfg.dataset.reader)
    fine_source = None
    if hasattr(reader, "heldout_reviews"):
        root = run.cfg.dataset.get("root")
        held = reader.heldout_reviews(None if root is None else Path(str(root)).expanduser())
        fine_source = ("heldout_review", list(held))
    elif "description" not in mods:
        full = load_dataset(run.cfg.dataset)
        desc = full.modalities.get("description")
        if desc is not None and desc.raw is not None:
            pairs = zip(desc.item_index, desc.raw, strict=True)
            fine_source = ("description", [(int(i), str(t)) for i, t in pairs if t])
    return LeakFreeInputs(indexed_text(run.dataset, mods), fine_source, categories_indexed)


def _getter(search: Any) -> Callable[..., Any]:
    """``get(key, default)`` on a search config: a mapping (DictConfig, dict) or an object."""
    return search.get if hasattr(search, "get") else lambda k, d=None: getattr(search, k, d)


class RunSearches:
    """Every search method on a loaded E-MMKGR run, as score functions over batches of queries
    (each query text encoded once, up front).

    Args:
        run: the loaded run.
        texts: every query text that will be scored.
        embedding: the indexed item embedding (default :data:`.artifacts.MM_ITEM`).
        top_n: neighbours of a propagated query (default: the graph's).
        progress: show the encoding's progress.
        index: the item index to score (default: a new exact one over the run's items). One that
            also holds cold-start items (``emmkgr-search`` on a saved index) widens every score
            matrix to them: BM25, the vector baseline and KG scoring do not rank them (``-inf``,
            so a fusion ranks them by its other rankings) and they carry no raw vectors.
    """

    def __init__(
        self,
        run: TrainedRun,
        texts: list[str],
        embedding: str = artifacts.MM_ITEM,
        top_n: int | None = None,
        progress: bool = False,
        index: ItemIndex | None = None,
    ) -> None:
        self.run, self.top_n, self.embedding = run, top_n, embedding
        self.qenc = QueryEncoder.from_run(run, "paper", "all")
        self.mods = self.qenc.text_modalities
        self.items = run_embeddings(run.run_dir, embedding)
        if index is None:
            index = ItemIndex(self.items, ItemMeta.from_catalog(run.dataset.catalog), embedding)
        self.index = index
        self.baseline = VectorBaseline.from_dataset(run.dataset, self.mods)
        self.bm25_index = BM25Search.from_dataset(run.dataset, self.mods)
        texts = sorted(set(texts))
        self.raw = self.qenc.raw_text(texts, progress=progress)
        self.row = {t: i for i, t in enumerate(texts)}
        self._encoders: dict[tuple[str, str], QueryEncoder] = {}
        self._kg: dict[str, KGSearch] = {}
        self._spaces: dict[str, np.ndarray] = {}

    def raw_of(self, batch: list[SearchQuery], modalities: list[str] | None = None) -> dict[str, np.ndarray]:
        rows = [self.row[q.text] for q in batch]
        return {m: self.raw[m][rows] for m in modalities or self.mods}

    def modalities(self, query_modality: str) -> list[str]:
        return self.qenc._resolve(query_modality)

    def _widen(self, scores: np.ndarray) -> np.ndarray:
        """Catalogue scores ``[B, N]`` -> ``[B, index items]``, ``-inf`` for cold-start items."""
        extra = self.index.n_items - scores.shape[1]
        if extra <= 0:
            return scores
        return np.concatenate([scores, np.full((scores.shape[0], extra), -np.inf, scores.dtype)], 1)

    def bm25(self, batch: list[SearchQuery]) -> np.ndarray:
        return self._widen(self.bm25_index.scores([q.text for q in batch]))

    def vector_baseline(self, batch: list[SearchQuery]) -> np.ndarray:
        return self._widen(self.baseline.scores(self.raw_of(batch)))

    def cosine(self, mapping: str, query_modality: str = "all") -> ScoreFn:
        """E-MMKGR: the query mapped (``paper`` or ``propagated``), cosine with the items (Eq. 7)."""
        key = (mapping, query_modality)
        if key not in self._encoders:
            self._encoders[key] = QueryEncoder.from_run(self.run, mapping, query_modality, self.top_n)
        qe = self._encoders[key]
        return lambda b: self.index.scores(qe.map(self.raw_of(b, qe.query_modalities)))

    def carried(self, mapping: str, alpha: float, query_modality: str = "all") -> ScoreFn:
        r"""E-MMKGR with the item's raw modality vectors carried into its search representation:
        :math:`\mathbf{v}_i = [\hat{\mathbf{h}}^{MM}_i;\ \alpha \hat{\mathbf{m}}_i / \sqrt{|M|}]`
        over the text modalities (zeros where an item lacks one), the query likewise, so that the
        cosine is :math:`\hat{\mathbf{h}}_q \cdot \hat{\mathbf{h}}_i + \frac{\alpha^2}{|M|}
        \sum_m \hat{\mathbf{m}}_q \cdot \hat{\mathbf{m}}_i` (one vector per item: a faiss index
        holds it). ``alpha = 0`` is the plain mapping."""
        base = self.cosine(mapping, query_modality)
        feats = {m: self.baseline.features[m] for m in self.mods}
        cols = self.baseline.item_index
        w = alpha * alpha / len(self.mods)

        def fn(b: list[SearchQuery]) -> np.ndarray:
            out = base(b).astype(np.float64)  # cosine with the normalised items (ItemIndex.scores)
            raw = self.raw_of(b)
            for m in self.mods:
                out[:, cols[m]] += w * (normalize_rows(raw[m]) @ feats[m].T)
            return out

        return fn

    def kg(self, node: str = "propagated", query_modality: str = "all") -> ScoreFn:
        """E-MMKGR: link prediction through ``<m>_of`` (:class:`~emmkgr_pyg.search.kg.KGSearch`)."""
        if node not in self._kg:
            self._kg[node] = KGSearch.from_run(self.run, self.items, node, self.top_n)
        kg, mods = self._kg[node], self.modalities(query_modality)
        return lambda b: self._widen(kg.scores(self.raw_of(b, mods)))

    @staticmethod
    def is_plain(search: Any) -> bool:
        """Whether the ``search`` config is one mapped vector per query (cosine, no raw vectors
        carried, no BM25 fusion): what a faiss index answers alone, HNSW included."""
        get = _getter(search)
        return (
            get("scorer", "cosine") == "cosine"
            and not get("carry_raw", 0.0)
            and not get("fuse_bm25", False)
            and not get("feedback", None)
        )

    def feedback_space(self, space: str) -> np.ndarray:
        r"""The item vectors ``[N, d]`` pseudo-relevance feedback averages in
        (:data:`~emmkgr_pyg.search.feedback.FEEDBACK_SPACES`): the run's ``H_mm_item`` or
        ``item`` embeddings, or ``raw``: the items' L2-normalised raw text-modality vectors side by
        side, each scaled by :math:`1/\sqrt{|M|}` (zeros where an item lacks one)."""
        if space not in FEEDBACK_SPACES:
            raise SearchError(f"search.feedback={space}: choose one of {list(FEEDBACK_SPACES)} or null.")
        if space not in self._spaces:
            if space == "raw":
                n, parts = self.run.dataset.n_items, []
                for m in self.mods:
                    x = np.zeros((n, self.baseline.features[m].shape[1]), dtype=np.float32)
                    x[self.baseline.item_index[m]] = self.baseline.features[m]
                    parts.append(x / np.sqrt(len(self.mods)))
                self._spaces[space] = np.concatenate(parts, 1)
            else:  # the indexed embedding is loaded already
                same = space == self.embedding
                self._spaces[space] = self.items if same else run_embeddings(self.run.run_dir, space)
        return self._spaces[space]

    def emmkgr(self, search: Any) -> ScoreFn:
        """The configured E-MMKGR search (``conf/search``: scorer, mapping or kg_node,
        query_modality, carry_raw (cosine), fuse_bm25 with fusion, rrf_k and bm25_weight, then
        pseudo-relevance feedback in the ``feedback`` space with ``feedback_k``, ``feedback_weight``
        and ``feedback_keep``)."""
        get = _getter(search)
        scorer = get("scorer", "cosine")
        if scorer not in SCORERS:
            raise SearchError(f"search.scorer={scorer}: choose one of {SCORERS}.")
        qm = get("query_modality", "all")
        if scorer == "kg":
            fn = self.kg(get("kg_node", "propagated"), qm)
        elif scorer == "dense":
            fn = self.vector_baseline
        elif get("carry_raw", 0.0):
            fn = self.carried(get("mapping", "propagated"), float(get("carry_raw")), qm)
        else:
            fn = self.cosine(get("mapping", "propagated"), qm)
        rrf_k = float(get("rrf_k", RRF_K))
        if get("fuse_bm25", False):
            w, how = get("bm25_weight", 1.0), get("fusion", "rrf")
            if not is_weight(w):
                raise SearchError(
                    f"search.bm25_weight={w}: give BM25's positive fusion weight (1: equal), "
                    "or fuse_bm25=false."
                )
            if how not in FUSIONS:
                raise SearchError(f"search.fusion={how}: choose one of {list(FUSIONS)} (how BM25 joins).")
            fn = self.fused([self.bm25, fn], rrf_k, [float(w), 1.0], how)
        if get("feedback", None):
            k, w, keep = get("feedback_k", 10), float(get("feedback_weight", 1.0)), get("feedback_keep", 0)
            fn = self.feedback(fn, get("feedback"), k, w, rrf_k, keep)
        return fn

    def feedback(
        self,
        first: ScoreFn,
        space: str,
        k: int = 10,
        weight: float = 1.0,
        rrf_k: float = RRF_K,
        keep: int = 0,
    ) -> ScoreFn:
        """``first`` with pseudo-relevance feedback in ``space``
        (:func:`~emmkgr_pyg.search.feedback.with_feedback`)."""
        try:
            return with_feedback(first, self.feedback_space(space), k, weight, rrf_k, keep)
        except ValueError as e:
            raise SearchError(f"search.{e}") from e

    @staticmethod
    def fused(
        fns: list[ScoreFn], k: float = RRF_K, weights: list[float] | None = None, method: str = "rrf"
    ) -> ScoreFn:
        """The fusion of several methods (:func:`~emmkgr_pyg.search.fusion.fuse`: reciprocal rank
        fusion with constant ``k``, or z-scores), ``weights`` 1 each unless given."""
        return lambda b: fuse(method, [fn(b) for fn in fns], k, weights)

    def competitors(self, k: float = RRF_K) -> dict[str, ScoreFn]:
        """BM25, the dense vector baseline and their fusion (:data:`COMPETITORS`)."""
        return {
            "bm25": self.bm25,
            "vector_baseline": self.vector_baseline,
            "hybrid": self.fused([self.bm25, self.vector_baseline], k),
        }


def evaluate_run(
    run: TrainedRun,
    sets: dict[str, list[SearchQuery]],
    search: Any = None,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """E-MMKGR (the ``search`` config: :meth:`RunSearches.emmkgr`; default: cosine, propagated,
    all query modalities, no fusion) and its competitors on each query set of a loaded run,
    ``{set: {"emmkgr" | "bm25" | "vector_baseline" | "hybrid": {metric: value}}}`` (metrics of
    :func:`~emmkgr_pyg.eval.search_eval.evaluate`); empty sets are left out."""
    search = search if search is not None else {}
    get = _getter(search)
    texts = [q.text for qs in sets.values() for q in qs]
    runs = RunSearches(run, texts, get("embedding", artifacts.MM_ITEM), get("top_n", None), progress)
    methods = {"emmkgr": runs.emmkgr(search), **runs.competitors(float(get("rrf_k", RRF_K)))}
    ids = run.dataset.catalog.item_ids
    return {
        s: {
            name: evaluate(fn, queries, ids, batch_size, progress=progress, desc=f"{s}/{name}")
            for name, fn in methods.items()
        }
        for s, queries in sets.items()
        if queries
    }

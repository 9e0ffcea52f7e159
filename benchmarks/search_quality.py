"""Product-search quality (paper section 4.1) under both protocols: E-MMKGR's searches against the
searches a user would pick instead (BM25, the dense vector baseline, their fusion), every choice
made on dev, test reported.

    python benchmarks/search_quality.py \\
        --case amazon_office:coarse:/path/office_noattr --case amazon_office:fine:/path/office_nodesc \\
        --case synthetic:coarse,fine:/path/synthetic [--lookup amazon_office:/path/office_noattr] \\
        [--case amazon_office:coarse:/path/office_noattr_search@align] [--merge] \\
        [--query-file benchmarks/queries/amazon_office_needs.jsonl:/path/office_full]

A case is a dataset, the query sets it answers, and the trained run (``model=emmkgr``) that
indexes nothing those sets come from (leak-free: coarse category queries need a run without
category text, ``modality.exclude=[attributes]``; fine queries come from held-out reviews, or from
descriptions on a run trained with ``modality.exclude=[description]``). ``--lookup`` names the run
the old lookup protocol is measured on (default: the dataset's coarse run). A case ``...@label``
is another model of the dataset (e.g. ``model=emmkgr_search``, the alignment term on): its
searches are tabulated as ``label:<search>`` beside the base run's. Each case is saved under benchmarks/results/cases/;
``--merge`` tabulates those of earlier invocations too. ``--query-file <jsonl>:<run_dir>`` adds a
query set a person wrote (:func:`~emmkgr_pyg.eval.query_store.read_query_file`), answered by that
run, as column ``file:<name>@<run>/<set>``; no choice is made on it (a held-out check of the
defaults, e.g. ``benchmarks/queries/amazon_office_needs.jsonl``: shoppers' needs in their words).
``--dev-query-file <jsonl>:<run_dir>`` adds one as a dev set instead (column ``dev-file:...``): it
joins the leak-free dev sets in the choice of the default (e.g.
``benchmarks/queries/amazon_office_needs_dev.jsonl``: other needs, other categories).

Query sets: leak-free ``dev`` (seed 1) and ``test`` (seed 2: disjoint halves of the candidates),
lookup (seed 2), saved under benchmarks/results/queries/ and reused. Methods:

- competitors: ``bm25`` (bm25s over the indexed text), ``vector_baseline`` (dense, best single
  modality), ``hybrid`` (RRF of both, k = 60);
- E-MMKGR: ``cosine/paper`` (f_proj, Eq. 7), ``cosine/propagated``, ``kg/propagated`` and
  ``kg/projected`` (link prediction through ``<m>_of``), each over every query modality choice, and
  each fused with BM25 (``+bm25``, RRF k = 60: the graph's share is read against ``hybrid``, the
  same fusion with raw vectors in its place);
- pseudo-relevance feedback (``search.feedback``): the first ``k`` results of an E-MMKGR search,
  or of the dense / hybrid competitor (``dense/...``; the hybrid also with BM25 at a lower RRF
  weight, ``dense/hybrid-bm25w<w>``, ``search.bm25_weight``, or fused by z-scores instead of
  ranks, ``dense/hybrid-z[w<w>]``, ``search.fusion=zscore``), averaged in the learned item space
  (``H_mm_item``, ``item``) or in the raw text vectors (``raw``), that ranking fused with the first
  (RRF, weight w), the first stage's top result kept first or not (``keep1``);
  ``ablation:<competitor>+fb:raw/...`` is the competitors' own feedback with no graph in it, and
  ``ablation:hybrid-bm25w<w>`` / ``ablation:hybrid-z[w<w>]`` those hybrids alone (never candidate
  defaults): what the graph adds is a ``dense/...+fb:H_mm_item`` row over its ablation;
- diagnostics: ``oracle centroid`` (the query at its targets' mean: an upper reference for a single
  query vector) in H^MM and in each raw modality.

The default is the E-MMKGR search with the best geometric mean of its dev MAP@10 relative to the best
competitor over every (dataset, set); each set's own dev-best is reported beside it. Prints one table per dataset
(MAP@10; test of both protocols, dev beside) and writes benchmarks/results/search_quality.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from emmkgr_pyg.eval.query_store import query_sets, read_query_file
from emmkgr_pyg.eval.search_eval import evaluate
from emmkgr_pyg.eval.search_queries import QuerySetConfig, SearchQuery
from emmkgr_pyg.graph.knn import normalize_rows
from emmkgr_pyg.runs import load_run
from emmkgr_pyg.runs.search import COMPETITORS, RunSearches, leakfree_inputs
from emmkgr_pyg.utils import markdown_table

RESULTS = Path(__file__).resolve().parent / "results"
CONF = Path(__file__).resolve().parents[1] / "conf"
SEEDS = {"dev": 1, "test": 2}
METRIC = "MAP@10"
#: weights of the raw modality vectors carried into the item's search representation
CARRY = (0.5, 1.0, 2.0)
#: pseudo-relevance feedback (``search.feedback``): first results averaged, weight of its ranking
FEEDBACK_K = (5, 10)
FEEDBACK_WEIGHT = (0.25, 0.5, 1.0)
#: the first stage's top results kept first (``search.feedback_keep``)
FEEDBACK_KEEP = (0, 1)
#: first stages feedback is tried on (the E-MMKGR searches best on dev without it)
FEEDBACK_BASES = (
    {"scorer": "cosine", "mapping": "paper", "carry_raw": 2.0},
    {"scorer": "cosine", "mapping": "propagated", "carry_raw": 2.0},
    {"scorer": "cosine", "mapping": "propagated", "carry_raw": 1.0},
)
#: BM25's RRF weights in the hybrid first stage re-ranked by feedback (``search.bm25_weight``;
#: 1 is the competitor ``hybrid``): a lighter BM25 for queries phrased as needs, not item text
BM25_WEIGHTS = (1.0, 0.5, 0.25)
#: BM25's weights in the z-score fusion of the hybrid first stage (``search.fusion=zscore``): a
#: BM25 score far above the rest outweighs dense, by how far it stands out
ZSCORE_WEIGHTS = (1.0, 0.5, 0.25, 0.1)
#: BM25's z-score weight with E-MMKGR's own first stages (cosine with the raw vectors carried in):
#: one weight, not the whole grid, to keep the benchmark's length
ZSCORE_OWN = 0.5
#: rows that are no E-MMKGR search (never chosen as its default): a competitor with feedback in
#: the raw space, what feedback gives without the graph
ABLATION = "ablation:"


def variants(modalities: list[str]) -> list[dict[str, Any]]:
    """Every E-MMKGR search configuration tried on dev (``conf/search`` keys)."""
    out = []
    for qm in ["all", *modalities] if len(modalities) > 1 else ["all"]:
        for how in (
            {"scorer": "cosine", "mapping": "paper"},
            {"scorer": "cosine", "mapping": "propagated"},
            {"scorer": "kg", "kg_node": "propagated"},
            {"scorer": "kg", "kg_node": "projected"},
        ):
            for fuse in (False, True):
                out.append({**how, "query_modality": qm, "fuse_bm25": fuse})
    # E-MMKGR's own first stages: alone, with BM25 by RRF, and with BM25 by z-scores
    own = [(False, 1.0, "rrf"), (True, 1.0, "rrf"), (True, ZSCORE_OWN, "zscore")]
    for mapping in ("paper", "propagated"):
        for alpha in CARRY:
            for fuse, bw, how in own:
                v = {
                    "scorer": "cosine",
                    "mapping": mapping,
                    "query_modality": "all",
                    "carry_raw": alpha,
                    "fuse_bm25": fuse,
                }
                if how != "rrf":
                    v.update(fusion=how, bm25_weight=bw)
                out.append(v)
    firsts = [(b, ("H_mm_item", "item", "raw"), own) for b in FEEDBACK_BASES]
    # the competitors' first stage re-ranked in the learned space (in raw vectors: the ablation rows)
    fusions = [(False, 1.0, "rrf"), *((True, w, "rrf") for w in BM25_WEIGHTS)]
    fusions += [(True, w, "zscore") for w in ZSCORE_WEIGHTS]
    firsts.append(({"scorer": "dense"}, ("H_mm_item", "item"), fusions))
    for base, spaces, first_stages in firsts:
        for fuse, bw, how in first_stages:
            for space in spaces:
                for k, w, keep in itertools.product(FEEDBACK_K, FEEDBACK_WEIGHT, FEEDBACK_KEEP):
                    fb = {"feedback": space, "feedback_k": k, "feedback_weight": w, "feedback_keep": keep}
                    first = {**base, "query_modality": "all", "fuse_bm25": fuse}
                    if bw != 1.0:
                        first["bm25_weight"] = bw
                    if how != "rrf":
                        first["fusion"] = how
                    out.append({**first, **fb})
    return out


def hybrid_name(bw: float, how: str = "rrf") -> str:
    """The dense + BM25 first stage: ``hybrid`` (RRF, equal weights), ``hybrid-bm25w<w>`` (RRF,
    BM25 at weight w), ``hybrid-z`` / ``hybrid-zw<w>`` (z-score fusion)."""
    if how == "zscore":
        return "hybrid-z" + (f"w{bw:g}" if bw != 1 else "")
    return "hybrid" + (f"-bm25w{bw:g}" if bw != 1 else "")


def fb_name(space: str, k: int, w: float, keep: int = 0) -> str:
    return f"+fb:{space}/k{k}/w{w:g}" + (f"/keep{keep}" if keep else "")


def name_of(v: dict[str, Any]) -> str:
    fb = ""
    if v.get("feedback"):
        fb = fb_name(v["feedback"], v["feedback_k"], v["feedback_weight"], v.get("feedback_keep", 0))
    bw = float(v.get("bm25_weight", 1.0))
    if v["scorer"] == "dense":
        first = hybrid_name(bw, v.get("fusion", "rrf")) if v["fuse_bm25"] else "vector_baseline"
        return "dense/" + first + fb
    how = v.get("mapping") if v["scorer"] == "cosine" else v.get("kg_node")
    raw = f"+raw{v['carry_raw']:g}" if v.get("carry_raw") else ""
    z = "z" if v.get("fusion", "rrf") == "zscore" else ""
    bm25 = ("+bm25" + z + (f"w{bw:g}" if bw != 1 else "")) if v["fuse_bm25"] else ""
    return f"{v['scorer']}/{how}/{v['query_modality']}{raw}" + bm25 + fb


def oracle(x: np.ndarray, pos: dict[str, int]):
    def fn(batch: list[SearchQuery]) -> np.ndarray:
        c = np.stack([x[[pos[t] for t in q.targets]].mean(0) for q in batch])
        return normalize_rows(c) @ x.T

    return fn


#: result key prefix of a query file answered as a held-out check, and of one that is a dev set
FILE, DEV_FILE = "file:", "dev-file:"


def bench_case(
    run_dir: str, want: list[str], protocols: list[str], files: list[tuple[str, str]] = ()
) -> dict[str, Any]:
    """``{protocol/part: {set: {method: metrics}}}`` of one run: the leak-free sets in ``want``
    (those it indexes no source of), both lookup sets, and the sets of each query file in ``files``
    (``(path, prefix)``: key ``<prefix><name>@<run>``, prefix :data:`FILE` or :data:`DEV_FILE`)."""
    t0 = time.perf_counter()
    run = load_run(run_dir)
    ds = run.dataset
    inputs = leakfree_inputs(run)
    all_sets: dict[str, dict[str, list[SearchQuery]]] = {}
    for protocol in protocols:
        parts = ("dev", "test") if protocol == "leakfree" else ("test",)
        for part in parts:
            qcfg = QuerySetConfig(seed=SEEDS[part], protocol=protocol, part=part)
            folder = RESULTS / "queries" / ds.name / Path(run_dir).name / f"{protocol}_{part}"
            sets = query_sets(ds, qcfg, folder, leakfree=inputs if protocol == "leakfree" else None)
            keep = want if protocol == "leakfree" else list(sets)
            all_sets[f"{protocol}/{part}"] = {s: q for s, q in sets.items() if s in keep and q}
    for path, prefix in files:
        all_sets[f"{prefix}{Path(path).stem}@{Path(run_dir).name}"] = read_query_file(path, ds.catalog)
    texts = [q.text for sets in all_sets.values() for qs in sets.values() for q in qs]
    searches = RunSearches(run, texts, progress=True)
    methods = dict(searches.competitors())
    for v in variants(searches.mods):
        methods[name_of(v)] = searches.emmkgr(v)
    firsts = {c: methods[c] for c in COMPETITORS}
    # the hybrid with a lighter BM25, and with z-score fusion: no graph in them either
    for bw, how in [*((w, "rrf") for w in BM25_WEIGHTS[1:]), *((w, "zscore") for w in ZSCORE_WEIGHTS)]:
        name = hybrid_name(bw, how)
        firsts[name] = searches.fused(
            [searches.bm25, searches.vector_baseline], weights=[bw, 1.0], method=how
        )
        methods[f"{ABLATION}{name}"] = firsts[name]
    for c, first in firsts.items():  # feedback without the graph: the competitors' own results, raw vectors
        for k, w, keep in itertools.product(FEEDBACK_K, FEEDBACK_WEIGHT, FEEDBACK_KEEP):
            fb = searches.feedback(first, "raw", k, w, keep=keep)
            methods[f"{ABLATION}{c}{fb_name('raw', k, w, keep)}"] = fb
    ids = ds.catalog.item_ids
    pos = {x: i for i, x in enumerate(ids)}
    methods["oracle centroid H_mm"] = oracle(normalize_rows(searches.items), pos)
    raw = searches.feedback_space("raw")  # each text modality's raw vectors, side by side
    start = 0
    for m in searches.mods:  # a column block each (its 1/sqrt(|M|) scale changes no ranking)
        width = searches.baseline.features[m].shape[1]
        methods[f"oracle centroid raw {m}"] = oracle(raw[:, start : start + width], pos)
        start += width
    for alpha in CARRY:  # the same diagnostic in the space with the raw vectors carried in
        x = np.concatenate([normalize_rows(searches.items), alpha * raw], 1)
        methods[f"oracle centroid H_mm+raw{alpha:g}"] = oracle(x, pos)
    out: dict[str, Any] = {"run": run_dir, "dataset": ds.name, "modalities": searches.mods, "results": {}}
    out["fine_source"] = inputs.fine_source[0] if inputs.fine_source else None
    for key, sets in all_sets.items():
        res = out["results"].setdefault(key, {})
        for s, queries in sets.items():
            res[s] = {"count": len(queries), "methods": {}}
            for name, fn in methods.items():
                res[s]["methods"][name] = evaluate(fn, queries, ids, batch_size=128)
            best = max(
                res[s]["methods"].items(), key=lambda kv: kv[1][METRIC] if "oracle" not in kv[0] else -1
            )
            print(f"  {key} {s} ({len(queries)} queries): best {best[0]} {best[1][METRIC]:.4f}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["valid/Recall@20"] = run.results.get("valid/Recall@20")
    return out


def is_emmkgr(name: str) -> bool:
    """Whether a method row is an E-MMKGR search (a candidate default)."""
    return name not in COMPETITORS and "oracle" not in name and not name.startswith(ABLATION)


def geomean(ratios: list[float]) -> float:
    """Geometric mean of positive ratios (a zero ratio makes it 0)."""
    r = np.asarray(ratios, dtype=np.float64)
    return 0.0 if (r <= 0).any() else float(np.exp(np.log(r).mean()))


def choose(cases: list[dict[str, Any]]) -> tuple[str, dict[tuple[str, str], str]]:
    """The default E-MMKGR search (best geometric mean of its dev MAP@10 relative to the best
    competitor over every (dataset, set): the leak-free dev sets and the dev query files) and each
    (dataset, set)'s own dev-best (the same rule over that set's dev columns: a dev query file
    answered by two runs is two columns). The geometric mean is the one that averages ratios (a
    ratio of .5 on one set is not made up by 1.5 on another; Fleming & Wallace, CACM 1986)."""
    ratios: dict[str, list[float]] = {}
    per_set: dict[tuple[str, str], dict[str, list[float]]] = {}
    for case in cases:
        dev = [case["results"].get("leakfree/dev", {})]
        dev += [sets for key, sets in sorted(case["results"].items()) if key.startswith(DEV_FILE)]
        for s, r in (kv for sets in dev for kv in sets.items()):
            m = r["methods"]
            ref = max(m[c][METRIC] for c in COMPETITORS)
            for k, v in m.items():
                if is_emmkgr(k):
                    ratios.setdefault(k, []).append(v[METRIC] / ref if ref > 0 else 0.0)
                    per_set.setdefault((case["dataset"], s), {}).setdefault(k, []).append(ratios[k][-1])
    own = {key: best(r) for key, r in per_set.items()}
    if not ratios:  # no dev set (query files only): the shipped default
        return name_of(OmegaConf.to_container(OmegaConf.load(CONF / "search" / "default.yaml"))), own
    return best(ratios), own


def best(ratios: dict[str, list[float]]) -> str:
    """The method with the best geometric mean ratio among those measured on every column."""
    full = max(len(v) for v in ratios.values())
    return max((k for k in ratios if len(ratios[k]) == full), key=lambda k: geomean(ratios[k]))


def merge_labelled(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cases of other models of a dataset (``label``) folded into its unlabelled cases: their
    E-MMKGR searches and H^MM diagnostics as ``<label>:<method>`` beside the base model's."""
    base = [c for c in cases if not c.get("label")]
    for case in (c for c in cases if c.get("label")):
        for key, sets in case["results"].items():
            for s, r in sets.items():
                target = next(
                    (b for b in base if b["dataset"] == case["dataset"] and s in b["results"].get(key, {})),
                    None,
                )
                if target is None:
                    continue
                methods = target["results"][key][s]["methods"]
                for name, v in r["methods"].items():
                    # competitors, ablations and raw diagnostics do not depend on the model: the
                    # base case has them (a labelled ablation would also pass for an E-MMKGR search)
                    if name not in COMPETITORS and not name.startswith(ABLATION) and "raw " not in name:
                        methods[f"{case['label']}:{name}"] = v
    return base


def tables(cases: list[dict[str, Any]], default: str, own: dict[tuple[str, str], str]) -> str:
    report = [f"Default E-MMKGR search (dev-chosen over every dataset and set): `{default}`", ""]
    by_ds: dict[str, dict[str, dict[str, Any]]] = {}
    for case in cases:
        for key, sets in case["results"].items():
            for s, r in sets.items():
                by_ds.setdefault(case["dataset"], {})[f"{key}/{s}"] = r
    for ds, cols in by_ds.items():
        order = [
            c
            for c in (
                "leakfree/test/coarse",
                "leakfree/test/fine",
                "lookup/test/coarse",
                "lookup/test/fine",
                "leakfree/dev/coarse",
                "leakfree/dev/fine",
            )
            if c in cols
        ]
        order += sorted(c for c in cols if c.startswith(FILE))
        order += sorted(c for c in cols if c.startswith(DEV_FILE))
        rows_named = [
            *((c, c) for c in COMPETITORS),
            (f"E-MMKGR default ({default})", default),
        ]
        for s in sorted(s for d, s in own if d == ds):
            rows_named.append((f"E-MMKGR dev-best on {s} ({own[(ds, s)]})", own[(ds, s)]))
        names = sorted({m for c in order for m in cols[c]["methods"]})
        rows_named += [(n, n) for n in names if n not in COMPETITORS]
        header = ["method", *(f"{c} MAP@10 (n={cols[c]['count']})" for c in order)]
        rows = [
            [label, *(cols[c]["methods"].get(n, {}).get(METRIC, float("nan")) for c in order)]
            for label, n in rows_named
        ]
        lines = [f"## {ds}", "", markdown_table(header, rows), ""]
        for c in order:
            if not c.startswith(("leakfree/test", "lookup/test", FILE)):
                continue
            m = cols[c]["methods"]
            ref_name = max(COMPETITORS, key=lambda k: m[k][METRIC])
            ref = m[ref_name][METRIC]
            s = c.rsplit("/", 1)[1]
            picks = {"default": default}
            if (ds, s) in own:
                picks[f"dev-best on {s}"] = own[(ds, s)]
            for label, n in picks.items():
                if n not in m:  # a labelled model measured on the leak-free sets only
                    continue
                rel = m[n][METRIC] / ref - 1 if ref > 0 else float("nan")
                lines.append(
                    f"- {c}: E-MMKGR {label} `{n}` {m[n][METRIC]:.4f} vs best competitor "
                    f"{ref_name} {ref:.4f}: {rel:+.1%}"
                )
        report.append("\n".join(lines))
    return "\n\n".join(report)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", action="append", default=[], help="dataset:set[,set]:run_dir")
    p.add_argument("--lookup", action="append", default=[], help="dataset:run_dir (lookup protocol)")
    p.add_argument(
        "--query-file",
        action="append",
        default=[],
        help="jsonl:run_dir, a query set a person wrote, answered by that run (never used for choices)",
    )
    p.add_argument(
        "--dev-query-file",
        action="append",
        default=[],
        help="jsonl:run_dir, a query set a person wrote, answered by that run, a dev set of the choice",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="also tabulate the cases saved by earlier invocations (benchmarks/results/cases/)",
    )
    args = p.parse_args()
    lookup = dict(x.split(":", 1) for x in args.lookup)
    planned: dict[str, tuple[list[str], list[str]]] = {}
    labels = {}
    for spec in args.case:
        ds, sets, run_dir = spec.split(":", 2)
        run_dir, _, label = run_dir.partition("@")
        labels[run_dir] = label or None
        want, protocols = planned.setdefault(run_dir, ([], []))
        want += sets.split(",")
        protocols.append("leakfree")
        if "coarse" in sets and ds not in lookup and not label:
            lookup[ds] = run_dir
    for run_dir in lookup.values():
        planned.setdefault(run_dir, ([], []))[1].append("lookup")
    files: dict[str, list[tuple[str, str]]] = {}
    for spec, prefix in [
        *((q, FILE) for q in args.query_file),
        *((q, DEV_FILE) for q in args.dev_query_file),
    ]:
        path, run_dir = spec.split(":", 1)
        files.setdefault(run_dir, []).append((path, prefix))
        planned.setdefault(run_dir, ([], []))
    saved = RESULTS / "cases"
    saved.mkdir(parents=True, exist_ok=True)
    cases = {}
    for run_dir, (want, protocols) in planned.items():
        print(f"{run_dir}: leak-free {sorted(set(want))}, protocols {sorted(set(protocols))}")
        case = bench_case(run_dir, sorted(set(want)), sorted(set(protocols)), files.get(run_dir, []))
        case["label"] = labels.get(run_dir)
        key = f"{case['dataset']}_{Path(run_dir).name}"
        (saved / f"{key}.json").write_text(json.dumps(case, indent=2))
        cases[key] = case
    if args.merge:
        for path in sorted(saved.glob("*.json")):
            cases.setdefault(path.stem, json.loads(path.read_text()))
    cases = merge_labelled(list(cases.values()))
    default, own = choose(cases)
    report = tables(cases, default, own)
    print("\n" + report)
    RESULTS.mkdir(exist_ok=True)
    out = {"default": default, "dev_best": {f"{d}/{s}": n for (d, s), n in own.items()}, "cases": cases}
    (RESULTS / "search_quality.json").write_text(json.dumps(out, indent=2))
    (RESULTS / "search_quality.md").write_text(report + "\n")
    print(f"\nwrote {RESULTS / 'search_quality.json'}")


if __name__ == "__main__":
    main()

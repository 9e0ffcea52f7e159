"""Recommendation quality in the shape of the paper's Table 2: every model, several seeds, one protocol.

    python benchmarks/rec_table.py                                 # Office + generated default, every conf/model
    python benchmarks/rec_table.py --datasets amazon_office --models emmkgr,lightgcn --seeds 0,1,2
    python benchmarks/rec_table.py --overrides model.net.kg_layers=3   # extra Hydra overrides for every job
    python benchmarks/rec_table.py --tag b --models lgmrec --also a     # finish table "a" in a second sweep

Each dataset is one ``emmkgr-train -m`` sweep (models x seeds) into
``benchmarks/results/rec/<tag or "default">/<dataset>/``; the table shows mean +- std of Recall@10/20
and NDCG@10/20 (best mean in bold), each E-MMKGR variant's relative gain over the best baseline,
seconds per epoch (training and validation) and peak memory per model. ``--also`` adds the runs of
earlier tags (a model run under two tags counts all its runs). Writes
``benchmarks/results/rec_table[_<tag>].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import emmkgr_pyg.conf

from emmkgr_pyg.eval.summary import collect_runs

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
#: the table's row order; a conf/model config not named here follows, by name
ORDER = (
    "lightgcn",
    "lightgcn_pyg",
    "grcn",
    "dualgnn",
    "lattice",
    "bm3",
    "freedom",
    "lgmrec",
    "emmkgr",
    "emmkgr_ii",
)
METRICS = ("test/Recall@10", "test/Recall@20", "test/NDCG@10", "test/NDCG@20")
DATASET_ARGS = {"amazon_office": [f"dataset.root={SHARED / 'amazon-office-2014'}"]}


def all_models() -> str:
    """Every model config of the installed package (``conf/model/*.yaml``), in :data:`ORDER` first."""
    found = {p.stem for p in (Path(emmkgr_pyg.conf.__file__).parent / "model").glob("*.yaml")}
    return ",".join([m for m in ORDER if m in found] + sorted(found - set(ORDER)))


def sweep(dataset: str, models: str, seeds: str, overrides: list[str], out: Path) -> float:
    exe = Path(sys.executable).parent / "emmkgr-train"
    args = [
        str(exe),
        "-m",
        f"dataset={dataset}",
        *DATASET_ARGS.get(dataset, []),
        f"model={models}",
        f"seed={seeds}",
        "train.progress=false",
        f"hydra.sweep.dir={out}",
        *overrides,
    ]
    print("$", " ".join(args[1:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(args, check=True)
    return time.perf_counter() - t0


def table(dataset: str, folders: list[Path]) -> tuple[str, dict]:
    by_model: dict[str, list[dict]] = {}
    errors: dict[str, list[str]] = {}
    for run in (r for f in folders if f.is_dir() for r in collect_runs(f)):
        model = next((o.split("=", 1)[1] for o in run["overrides"] if o.startswith("model=")), "?")
        if "results" in run:
            by_model.setdefault(model, []).append(run["results"])
        else:
            errors.setdefault(model, []).append(run["error"])
    stats = {}
    for model, runs in by_model.items():
        s = {"n": len(runs)}
        for key in (*METRICS, "seconds_per_epoch", "peak_rss_mib", "best_epoch"):
            vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
            mean = sum(vals) / len(vals) if vals else math.nan
            std = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
            s[key] = (mean, std)
        stats[model] = s
    best = {m: max(stats, key=lambda k: stats[k][m][0]) for m in METRICS}
    lines = [
        f"### {dataset}",
        "",
        "| model | n | "
        + " | ".join(m.split("/")[1] for m in METRICS)
        + " | s/epoch | peak MiB | best epoch |",
        "|---|---|" + "---|" * (len(METRICS) + 3),
    ]
    for model, s in stats.items():
        cells = []
        for m in METRICS:
            c = f"{s[m][0]:.4f} ± {s[m][1]:.4f}"
            cells.append(f"**{c}**" if best[m] == model else c)
        lines.append(
            f"| {model} | {s['n']} | "
            + " | ".join(cells)
            + f" | {s['seconds_per_epoch'][0]:.2f} | {s['peak_rss_mib'][0]:.0f} | {s['best_epoch'][0]:.0f} |"
        )
    gains = {}
    others = [m for m in stats if not m.startswith("emmkgr")]
    for ours in (m for m in stats if m.startswith("emmkgr")):
        if not others:
            break
        row, gains[ours] = [], {}
        for m in METRICS:
            base = max(others, key=lambda k: stats[k][m][0])
            gains[ours][m] = {"best_baseline": base, "gain": stats[ours][m][0] / stats[base][m][0] - 1}
            row.append(f"{100 * gains[ours][m]['gain']:+.2f}% vs {base}")
        lines.append(f"| {ours}: gain over the best baseline | | " + " | ".join(row) + " | | | |")
    for model, errs in errors.items():
        lines.append(f"\n{model}: {len(errs)} failed job(s): {errs[0]}")
    return "\n".join(lines), {"stats": stats, "gains": gains, "errors": errors}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="amazon_office,synthetic")
    p.add_argument("--models", default=all_models(), help="default: every conf/model config")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--overrides", nargs="*", default=[])
    p.add_argument("--tag", default="", help="sub-folder name for this sweep (default: none)")
    p.add_argument("--summarize-only", action="store_true", help="re-print from existing results")
    p.add_argument(
        "--also",
        nargs="*",
        default=[],
        help="tags of earlier sweeps whose runs join the table (to finish a table in parts)",
    )
    args = p.parse_args()
    out_all, md = {}, []
    for dataset in args.datasets.split(","):
        folder = RESULTS / "rec" / (args.tag or "default") / dataset
        seconds = (
            None if args.summarize_only else sweep(dataset, args.models, args.seeds, args.overrides, folder)
        )
        text, data = table(dataset, [folder, *(RESULTS / "rec" / t / dataset for t in args.also)])
        data["sweep_seconds"] = seconds
        print("\n" + text + "\n", flush=True)
        md.append(text)
        out_all[dataset] = data
    RESULTS.mkdir(exist_ok=True)
    name = f"rec_table{'_' + args.tag if args.tag else ''}"
    (RESULTS / f"{name}.json").write_text(json.dumps(out_all, indent=2))
    (RESULTS / f"{name}.md").write_text("\n\n".join(md) + "\n")
    print(f"wrote {RESULTS / (name + '.md')}")


if __name__ == "__main__":
    main()

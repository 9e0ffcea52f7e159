"""Recommendation quality in the shape of the paper's Table 2: every model, several seeds, one protocol.

    python benchmarks/rec_table.py                                 # Office + generated default, every conf/model
    python benchmarks/rec_table.py --datasets amazon_office --models emmkgr,lightgcn --seeds 0,1,2
    python benchmarks/rec_table.py --overrides model.net.kg_layers=3   # extra Hydra overrides for every job
    python benchmarks/rec_table.py --tag b --models lgmrec --also a     # finish table "a" in a second sweep
    python benchmarks/rec_table.py --tuned --datasets synthetic --models emmkgr,freedom \
        --search-overrides train.epochs=30 --overrides train.epochs=30     # equal tuning first

Each dataset is one ``emmkgr-train -m`` sweep (models x seeds) into
``benchmarks/results/rec/<tag or "default">/<dataset>/``; the table shows mean +- std of Recall@10/20
and NDCG@10/20 (best mean in bold), each E-MMKGR variant's relative gain over the best baseline,
seconds per epoch (training and validation) and peak memory per model. ``--also`` adds the runs of
earlier tags (a model run under two tags counts all its runs). Writes
``benchmarks/results/rec_table[_<tag>].json`` and ``.md``.

``--tuned``: every model gets the same search first, ``emmkgr-train -m hparams_search=<model>``
(Optuna, ``conf/tune``: the same trial budget, epoch cap and patience for all, validation Recall@20,
no test evaluation) into ``benchmarks/results/rec/<tag or "tuned">/<dataset>/search/<model>/``; a
finished study is reused and an interrupted one resumes (its sqlite storage). Then the seeds run at
each model's best trial into ``.../final/<model>/`` (seeds already there are reused), and the table
shows each model's chosen setting beside it. ``--extensions entities`` adds, for each E-MMKGR model,
the same seeds at its tuned setting with ``+experiment=entities`` (row ``emmkgr+entities``).
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
import optuna

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


def run(args: list[str]) -> float:
    exe = Path(sys.executable).parent / "emmkgr-train"
    print("$ emmkgr-train", " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run([str(exe), *args], check=True)
    return time.perf_counter() - t0


def seeds_done(folder: Path, chosen: list[str]) -> set[int]:
    """Seeds already run in ``folder``'s sweeps at the ``chosen`` setting (a study resumed with
    more trials may choose another; runs at an earlier choice are not reused)."""
    sweeps = [d for d in folder.iterdir() if d.is_dir()] if folder.is_dir() else []
    return {
        r["results"]["seed"]
        for d in sweeps
        for r in collect_runs(d)
        if "results" in r and set(chosen) <= set(r["overrides"])
    }


def tuned(dataset: str, model: str, seeds: str, args: argparse.Namespace, out: Path) -> dict:
    """The model's Optuna search (run, resumed or reused), then ``seeds`` at its best trial."""
    search, final = out / "search" / model, out / "final" / model
    common = [f"dataset={dataset}", *DATASET_ARGS.get(dataset, []), "train.progress=false"]
    seconds = run(
        ["-m", f"hparams_search={model}", *common, f"hydra.sweep.dir={search}", *args.search_overrides]
    )
    study = optuna.load_study(study_name=f"{model}-{dataset}", storage=f"sqlite:///{search / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    best = study.best_trial
    chosen = [f"{k}={v}" for k, v in sorted(best.params.items())]
    wanted = seeds.split(",")
    done = seeds_done(final, chosen)
    todo = [s for s in wanted if int(s) not in done]
    if todo:
        seconds += run(
            ["-m", f"model={model}", *common, f"seed={','.join(todo)}", *chosen, *args.overrides]
            + [f"hydra.sweep.dir={final}/{'_'.join(todo)}"]
        )
    for ext in args.extensions if model.startswith("emmkgr") else []:
        # an extension's ablation row: the same seeds at the model's tuned setting, plus the
        # experiment config (not tuned again: what the extension adds to the tuned model)
        folder = out / "final" / f"{model}+{ext}"
        done = seeds_done(folder, chosen)
        todo = [s for s in wanted if int(s) not in done]
        if todo:
            seconds += run(
                ["-m", f"model={model}", *common, f"seed={','.join(todo)}", *chosen]
                + [*with_experiment(args.overrides, ext), f"hydra.sweep.dir={folder}/{'_'.join(todo)}"]
            )
    return {
        "chosen": chosen,
        "search_valid_Recall@20": best.value,
        "trials": {s: states.count(s) for s in sorted(set(states))},
        "seconds": seconds,
    }


def row_label(overrides: list[str]) -> str:
    """A run's table row: its model, plus ``+<experiment>`` for a run of an experiment config
    (an extension's ablation row, e.g. ``emmkgr+entities``)."""
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "?")
    return "+".join([model, *experiments_of(overrides)])


def experiments_of(overrides: list[str]) -> list[str]:
    """The experiment configs ``+experiment=a`` or ``+experiment=[a,b]`` overrides name."""
    out = []
    for o in overrides:
        if o.startswith("+experiment="):
            out += [e.strip() for e in o.split("=", 1)[1].strip("[]").split(",") if e.strip()]
    return out


def with_experiment(overrides: list[str], ext: str) -> list[str]:
    """``overrides`` plus experiment ``ext``: Hydra takes one ``+experiment=`` override, so the
    experiments already named join ``ext`` in a list, ``+experiment=[prune,entities]``."""
    rest = [o for o in overrides if not o.startswith("+experiment=")]
    return [*rest, f"+experiment=[{','.join([*experiments_of(overrides), ext])}]"]


def table(dataset: str, folders: list[Path]) -> tuple[str, dict]:
    by_model: dict[str, list[dict]] = {}
    errors: dict[str, list[str]] = {}
    for run in (r for f in folders if f.is_dir() for r in collect_runs(f)):
        model = row_label(run["overrides"])
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
    p.add_argument("--tuned", action="store_true", help="tune every model first (conf/hparams_search)")
    p.add_argument(
        "--search-overrides",
        nargs="*",
        default=[],
        help="overrides of every search (the same for all models, e.g. train.epochs=30)",
    )
    p.add_argument(
        "--extensions",
        nargs="*",
        default=[],
        help="--tuned: experiment configs (conf/experiment, e.g. entities) run at each E-MMKGR "
        "model's tuned setting, one ablation row each (<model>+<experiment>)",
    )
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
        folder = RESULTS / "rec" / (args.tag or ("tuned" if args.tuned else "default")) / dataset
        if args.tuned:
            settings = {}
            for model in args.models.split(","):
                settings[model] = tuned(dataset, model, args.seeds, args, folder)
            text, data = table(dataset, sorted((folder / "final").glob("*/*")))
            text += "\n\n| model | chosen setting (best validation Recall@20 of the search) | search valid R@20 | trials |\n"
            text += "|---|---|---|---|\n"
            text += "\n".join(
                f"| {m} | {' '.join(v['chosen'])} | {v['search_valid_Recall@20']:.4f} | "
                + ", ".join(f"{n} {k.lower()}" for k, n in v["trials"].items())
                + " |"
                for m, v in settings.items()
            )
            data["tuning"] = settings
            seconds = sum(v["seconds"] for v in settings.values())
        else:
            seconds = (
                None
                if args.summarize_only
                else sweep(dataset, args.models, args.seeds, args.overrides, folder)
            )
            text, data = table(dataset, [folder, *(RESULTS / "rec" / t / dataset for t in args.also)])
        data["sweep_seconds"] = seconds
        print("\n" + text + "\n", flush=True)
        md.append(text)
        out_all[dataset] = data
    RESULTS.mkdir(exist_ok=True)
    tag = args.tag or ("tuned" if args.tuned else "")
    name = f"rec_table{'_' + tag if tag else ''}"
    (RESULTS / f"{name}.json").write_text(json.dumps(out_all, indent=2))
    (RESULTS / f"{name}.md").write_text("\n\n".join(md) + "\n")
    print(f"wrote {RESULTS / (name + '.md')}")


if __name__ == "__main__":
    main()

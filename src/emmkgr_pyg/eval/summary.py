"""Summaries of sweeps: mean +- std per configuration over seeds, as a table and CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..utils import markdown_table

DEFAULT_METRICS = (
    "test/Recall@10",
    "test/Recall@20",
    "test/NDCG@10",
    "test/NDCG@20",
    "valid/Recall@20",
    "best_epoch",
    "seconds_per_epoch",
)


def collect_runs(folder: str | Path) -> list[dict[str, Any]]:
    """Every job of a sweep folder: its overrides and its results (or its error).

    A job whose ``results.json``, ``error.json`` or overrides cannot be read (a corrupt or
    half-copied file) is listed with ``unreadable``, the file and the reason, instead.
    """
    runs = []
    for job in sorted(Path(folder).iterdir(), key=lambda p: (len(p.name), p.name)):
        if not job.is_dir():
            continue
        results, error = job / "results.json", job / "error.json"
        if not (results.is_file() or error.is_file()):
            continue
        overrides_file = job / ".hydra" / "overrides.yaml"
        path = overrides_file
        try:
            overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
            if not isinstance(overrides, list):
                raise ValueError("not a list of overrides")
            run: dict[str, Any] = {"job": job.name, "overrides": overrides}
            if results.is_file():
                path = results
                run["results"] = _json_object(results)
            else:
                path = error
                run["error"] = _json_object(error)["error"]
        except (OSError, ValueError, KeyError, yaml.YAMLError) as e:
            reason = " ".join(str(e).split())
            runs.append({"job": job.name, "unreadable": f"{path}: {type(e).__name__}: {reason}"})
            continue
        runs.append(run)
    return runs


def _json_object(path: Path) -> dict[str, Any]:
    obj = json.loads(path.read_text())
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON {type(obj).__name__}, not an object")
    return obj


def configuration_labels(overrides: list[list[str]], ignore: tuple[str, ...] = ("seed",)) -> list[str]:
    """A label per run from the overrides that vary across the sweep (the seed excepted)."""
    parsed = [dict(o.split("=", 1) for o in ov if "=" in o) for ov in overrides]
    keys = sorted({k for p in parsed for k in p} - set(ignore))
    varying = [k for k in keys if len({p.get(k) for p in parsed}) > 1]
    ordered = [k for k in (o.split("=", 1)[0] for ov in overrides for o in ov) if k in varying]
    order = list(dict.fromkeys(ordered))
    return [" ".join(f"{k}={p[k]}" for k in order if k in p) or "(all runs)" for p in parsed]


def summarize(folder: str | Path, metrics: tuple[str, ...] = DEFAULT_METRICS) -> list[dict[str, Any]]:
    """One row per configuration: ``n`` seeds, ``failed`` jobs, and mean/std of each metric
    (unreadable jobs are left out: see :func:`summarize_runs`)."""
    return summarize_runs(collect_runs(folder), metrics)


def summarize_runs(
    runs: list[dict[str, Any]], metrics: tuple[str, ...] = DEFAULT_METRICS
) -> list[dict[str, Any]]:
    """:func:`summarize` of runs from :func:`collect_runs`, skipping those marked ``unreadable``."""
    runs = [r for r in runs if "unreadable" not in r]
    groups: dict[str, list[dict]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    for run, key in zip(runs, configuration_labels([r["overrides"] for r in runs]), strict=True):
        if "results" in run:
            groups[key].append(run["results"])
        else:
            failed[key] += 1
            groups.setdefault(key, [])
    rows = []
    for key, results in groups.items():
        row: dict[str, Any] = {
            "configuration": key,
            "n": len(results),
            "failed": failed.get(key, 0),
        }
        for m in metrics:
            vals = np.array([r[m] for r in results if isinstance(r.get(m), (int, float))], dtype=float)
            if len(vals):
                row[m] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
            else:
                row[m] = (math.nan, math.nan)
        rows.append(row)
    return rows


def _pm(mean: float, std: float, metric: str) -> str:
    if math.isnan(mean):
        return "-"
    digits = 1 if metric in ("best_epoch",) else 3 if metric == "seconds_per_epoch" else 4
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def to_markdown(rows: list[dict[str, Any]], metrics: tuple[str, ...] = DEFAULT_METRICS) -> str:
    header = ["configuration", "n", "failed", *metrics]
    body = [[r["configuration"], r["n"], r["failed"], *(_pm(*r[m], m) for m in metrics)] for r in rows]
    return markdown_table(header, body)


def to_csv(rows: list[dict[str, Any]], metrics: tuple[str, ...] = DEFAULT_METRICS) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["configuration", "n", "failed", *(f"{m} {s}" for m in metrics for s in ("mean", "std"))])
    for r in rows:
        w.writerow([r["configuration"], r["n"], r["failed"], *(v for m in metrics for v in r[m])])
    return buf.getvalue()

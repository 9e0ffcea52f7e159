"""``emmkgr-summarize <multirun folder>``: mean +- std per configuration over seeds, printed as a
markdown table and written as ``summary.csv``, ``summary.md`` and ``summary.json`` in the folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..eval.summary import DEFAULT_METRICS, collect_runs, summarize_runs, to_csv, to_markdown
from ..utils import write_json, write_text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="emmkgr-summarize", description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, help="a multirun folder (one sub-folder per job)")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), help="keys of results.json")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: the folder)")
    args = p.parse_args(argv)
    if not args.folder.is_dir():
        print(f"emmkgr-summarize: {args.folder} is not a folder", file=sys.stderr)
        return 2
    metrics = tuple(args.metrics)
    runs = collect_runs(args.folder)
    for run in runs:  # a corrupt job is left out of the table, and said so
        if "unreadable" in run:
            print(f"emmkgr-summarize: skipped job {run['job']}: {run['unreadable']}", file=sys.stderr)
    rows = summarize_runs(runs, metrics)
    if not rows:
        print(f"emmkgr-summarize: no results.json or error.json under {args.folder}", file=sys.stderr)
        return 1
    table = to_markdown(rows, metrics)
    print(table)
    out = args.out or args.folder
    write_text(out / "summary.md", table + "\n")
    write_text(out / "summary.csv", to_csv(rows, metrics))
    write_json(out / "summary.json", rows)
    print(f"\nwrote {out}/summary.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

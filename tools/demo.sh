#!/usr/bin/env bash
# The embedded-default pipeline end to end, with the console scripts a user runs by hand.
# Everything goes to ${EMMKGR_DEMO_DIR:-demo}/ ; features are cached in ${EMMKGR_CACHE:-~/.cache/emmkgr-pyg}.
set -euo pipefail
out=${EMMKGR_DEMO_DIR:-demo}
data="dataset=synthetic"
mkdir -p "$out"
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step "1. prepare the generated catalogue (split, MiniLM features)"
emmkgr-prepare $data out_dir="$out/prepared" progress=false

step "2. build the E-MMKG"
emmkgr-build-graph $data out_dir="$out/graph" progress=false

step "3. train E-MMKGR and LightGCN (early stopping on validation Recall@20)"
emmkgr-train -m $data model=emmkgr,lightgcn train.progress=false hydra.sweep.dir="$out/runs"

step "4. their table"
emmkgr-summarize "$out/runs"

echo; echo "done in $(( $(date +%s) - start )) s; outputs in $out/"

#!/usr/bin/env bash
# Set up a virtual environment for emmkgr-pyg (torch first, then the package with its extras) and
# run one job in it:
#   bash tools/run.sh demo    the embedded-default pipeline end to end (tools/demo.sh)
#   bash tools/run.sh test    the test suite (pytest; extra arguments go to pytest), on one worker
#                             process per core (pytest-xdist, at most 4; EMMKGR_TEST_WORKERS or
#                             -n N overrides, -n 0 runs in this process)
# Settings (environment): EMMKGR_VENV (default .venv), EMMKGR_TORCH (default torch==2.13.0, the
# CPU build on this machine's disk; any pip requirement works elsewhere), EMMKGR_WHEELS (a folder of
# ready-built torch-scatter/torch-sparse wheels; default ../shared/wheels when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."

job=${1:-}
shift || true
case "$job" in demo|test|setup) ;; *) echo "usage: bash tools/run.sh demo|test|setup [args]" >&2; exit 2 ;; esac

venv=${EMMKGR_VENV:-.venv}
torch_spec=${EMMKGR_TORCH:-torch==2.13.0}
wheels=${EMMKGR_WHEELS:-../shared/wheels}

if [ ! -x "$venv/bin/python" ]; then
  py=$(command -v python3.11 || command -v python3)
  echo "[setup] creating $venv with $($py --version)"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "[setup] installing $torch_spec"
  "${pip[@]}" "$torch_spec"
fi

# Reinstall the package only when its sources changed since the last install.
stamp_now=$(cat pyproject.toml $(find src conf -type f \( -name '*.py' -o -name '*.yaml' \) | sort) | sha256sum | cut -c1-16)
stamp_file="$venv/.emmkgr-pyg-installed"
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_now" ]; then
  rm -rf build  # setuptools never clears build/lib: a module deleted from src would ship again
  if [ -d "$wheels" ]; then
    echo "[setup] installing emmkgr-pyg[sparse,dev] (torch-scatter/torch-sparse from $wheels)"
    "${pip[@]}" --find-links "$wheels" ".[sparse,dev]"
  else
    echo "[setup] installing emmkgr-pyg[dev] (no torch-scatter/torch-sparse wheels found; the torch.sparse path is used)"
    "${pip[@]}" ".[dev]"
  fi
  echo "$stamp_now" > "$stamp_file"
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PATH="$PWD/$venv/bin:$PATH"
case "$job" in
  demo) exec bash tools/demo.sh "$@" ;;
  test)
    # Every test is single-threaded (tests/conftest.py), so the cores are used by running tests side
    # by side: the suite takes about half the time on two cores. A test file runs whole, in its
    # order, on one worker (loadfile), as it does in one process. -n given by the caller wins.
    workers=(-n "${EMMKGR_TEST_WORKERS:-auto}" --maxprocesses 4 --dist loadfile)
    for arg in "$@"; do
      case "$arg" in -n|-n*|--numprocesses|--numprocesses=*|no:xdist|-pno:xdist) workers=() ;; esac
    done
    exec "$venv/bin/python" -m pytest "${workers[@]}" "$@" ;;
  setup) ;;
esac

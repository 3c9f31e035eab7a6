#!/usr/bin/env bash
# The HAR-2 FastGRNN learning-rate / decay-schedule search on held-out training subjects
# (benchmarks/har2_lr_search.py: protocol, grid and score in its docstring), one thread,
# niced, one run at a time. Resumable: its run dirs live outside the work tree
# ($RUNS/har2_lr_search/<run>), finished runs are skipped. Writes
# benchmarks/results/har2_lr_search.{json,md}; log in $RUNS/har2_lr_search.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-$HOME/.cache/tf_globalmp/runs}
mkdir -p "$RUNS"
nice -n 10 $PY benchmarks/har2_lr_search.py --threads=1 --root="$RUNS/har2_lr_search" "$@" \
  >> "$RUNS/har2_lr_search.log" 2>&1
cat benchmarks/results/har2_lr_search.md

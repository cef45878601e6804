#!/usr/bin/env bash
# Re-run the benches whose sections of docs/benchmarks.md have no saved JSON yet (or whose
# numbers should be refreshed), one after the other on an otherwise idle machine: each saves
# docs/results/bench/<name>.json and rewrites its section from it. Needs EmoDB ($EMODB,
# default /work/shared/datasets/emodb) and, for the edge bench, the default model in
# runs/multi-model/model.keras (`bash scripts/build_default_model.sh` trains it, and also
# rewrites the models shipped in edge_runtime/models/). Run from anywhere; about 1-2 h on 2
# cores.
#
#   bench/rerun_all.sh                 # every bench below
#   bench/rerun_all.sh frontend edge   # only these
#
# Afterwards `python bench/_report.py check` must pass, and `git diff docs/` shows what
# changed. The training and ablation sections are re-run by bench_training.py and
# bench_ablation.py (hours; see their docstrings), not here.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=tensorflow
PYTHON="${PYTHON:-python}"
EMODB="${EMODB:-/work/shared/datasets/emodb}"

run() {
  case "$1" in
    export) "$PYTHON" bench/bench_export.py --epochs 20 --emodb "$EMODB" ;;
    frontend) "$PYTHON" bench/bench_frontend.py --corpus "$EMODB/wav" ;;
    dynconv) "$PYTHON" bench/bench_dynconv.py ;;
    edge)
      "$PYTHON" bench/bench_edge.py --model runs/multi-model/model.keras --audio "$EMODB/wav"
      ;;
    *) echo "unknown bench: $1 (export, frontend, dynconv, edge)" >&2; return 2 ;;
  esac
}

benches="${*:-export frontend dynconv edge}"
case " $benches " in
  *" edge "*)
    if [ ! -f runs/multi-model/model.keras ]; then
      echo "runs/multi-model/model.keras not found: bash scripts/build_default_model.sh" >&2
      exit 1
    fi
    ;;
esac
for name in $benches; do
  echo "== $name" >&2
  run "$name"
done
"$PYTHON" bench/_report.py check

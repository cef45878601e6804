#!/usr/bin/env bash
# Rebuild the EmoDB model shipped in edge_runtime/models/ from the corpus, with the
# project's own CLIs: train one model with the default recipe (all speakers but the two
# validation speakers), then export full-integer TFLite calibrated on the corpus audio and
# the numpy graph for boards without an interpreter.
#   bash scripts/build_default_model.sh [EMODB_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
emodb=${1:-../shared/datasets/emodb}
out=runs/default-model
export KERAS_BACKEND=tensorflow
dyser-train --corpus emodb --data "$emodb" --protocol all --recipe default --seed 0 \
  --cache runs/cache --out "$out" --quiet
mkdir -p edge_runtime/models
dyser-export "$out/model.keras" --format tflite --quantize int8 --calibration "$emodb/wav" \
  --out edge_runtime/models/emodb-int8.tflite

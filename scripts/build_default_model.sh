#!/usr/bin/env bash
# Build the pooled multi-corpus model from the three shared corpora (EmoDB German, CASIA
# Mandarin, RAVDESS English), with the project's own CLIs: train ONE model with the default
# recipe on every corpus in the common label space (`--target all --protocol all`: all
# speakers but the validation speakers, chosen within each corpus; CASIA, with 4, gives none:
# keras_dyconv.pooling.POOLED_MIN_TRAIN_SPEAKERS), then export
# full-integer TFLite calibrated on audio of all three corpora (RAVDESS is FLAC), to
# edge_runtime/models/dyser-multi-int8.tflite. The edge runtime's default model is not
# switched by this script.
#   bash scripts/build_default_model.sh [EMODB_DIR] [CASIA_DIR] [RAVDESS_DIR]
#
# Its speaker-independent estimate, per corpus in results.json's "corpus_scores" (WA, UA,
# macro-F1 with bootstrap intervals, in the common and in each corpus's own label set),
# is the same training on 4 speaker-grouped folds, each holding out speakers of every corpus:
#   dyser-train --corpus emodb --data "$emodb" --corpus casia --data "$casia" \
#     --corpus ravdess --data "$ravdess" --target all --protocol group-kfold --folds 4 \
#     --recipe default --seed 0 --cache runs/cache --out runs/multi-group-kfold --quiet
#
# The EmoDB-only model it replaced (emodb-int8.tflite, no longer shipped) was made with:
#   dyser-train --corpus emodb --data "$emodb" --protocol all --recipe default --seed 0 \
#     --cache runs/cache --out runs/default-model --quiet
#   dyser-export runs/default-model/model.keras --format tflite --quantize int8 \
#     --calibration "$emodb/wav" --out edge_runtime/models/emodb-int8.tflite
set -euo pipefail
cd "$(dirname "$0")/.."
emodb=${1:-../shared/datasets/emodb}
casia=${2:-../shared/datasets/casia}
ravdess=${3:-../shared/datasets/ravdess}
out=runs/multi-model
export KERAS_BACKEND=tensorflow
dyser-train --corpus emodb --data "$emodb" --corpus casia --data "$casia" \
  --corpus ravdess --data "$ravdess" --target all --protocol all --recipe default --seed 0 \
  --cache runs/cache --out "$out" --quiet
mkdir -p edge_runtime/models
dyser-export "$out/model.keras" --format tflite --quantize int8 \
  --calibration "$emodb/wav" --calibration "$casia" --calibration "$ravdess" \
  --out edge_runtime/models/dyser-multi-int8.tflite

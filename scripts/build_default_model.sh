#!/usr/bin/env bash
# Build the two shipped pooled multi-corpus models from the three shared corpora (EmoDB
# German, CASIA Mandarin, RAVDESS English), with the project's own CLIs. Each is ONE model
# trained with the default recipe on every corpus in the common label space (`--target all
# --protocol all`: all speakers but the validation speakers, chosen within each corpus;
# CASIA, with 4, gives none: keras_dyconv.pooling.POOLED_MIN_TRAIN_SPEAKERS), then exported
# to full-integer TFLite calibrated on audio of all three corpora (RAVDESS is FLAC):
#   dataset: dataset normalisation, runs/multi-model -> dyser-multi-int8.tflite
#     (edge_runtime.recognizer.DEFAULT_MODEL, what `predict` runs: single clips);
#   stream: `--normalization stream --stream-training online` (online CMVN: it adapts to
#     the voice it hears), runs/multi-stream-model -> dyser-multi-stream-int8.tflite
#     (DEFAULT_STREAM_MODEL, what `stream` runs). The calibration folders name no speakers,
#     so each corpus calibrates it as one stream of mixed voices
#     (export.calibration.extract_windows).
# Both land in edge_runtime/models/.
# MODELS (default "dataset stream") picks which to build; the model card is written by hand.
#   bash scripts/build_default_model.sh [EMODB_DIR] [CASIA_DIR] [RAVDESS_DIR]
#   MODELS=stream bash scripts/build_default_model.sh
#
# The dataset model's speaker-independent estimate, per corpus in results.json's
# "corpus_scores" (WA, UA, macro-F1 with bootstrap intervals, in the common and in each
# corpus's own label set), is the same training on 4 speaker-grouped folds, each holding
# out speakers of every corpus:
#   dyser-train --corpus emodb --data "$emodb" --corpus casia --data "$casia" \
#     --corpus ravdess --data "$ravdess" --target all --protocol group-kfold --folds 4 \
#     --recipe default --seed 0 --cache runs/cache --out runs/multi-group-kfold --quiet
# (for the stream model: the same with its two options added).
#
# The EmoDB-only model the dataset model replaced (emodb-int8.tflite, no longer shipped)
# was made with:
#   dyser-train --corpus emodb --data "$emodb" --protocol all --recipe default --seed 0 \
#     --cache runs/cache --out runs/default-model --quiet
#   dyser-export runs/default-model/model.keras --format tflite --quantize int8 \
#     --calibration "$emodb/wav" --out edge_runtime/models/emodb-int8.tflite
set -euo pipefail
cd "$(dirname "$0")/.."
emodb=${1:-../shared/datasets/emodb}
casia=${2:-../shared/datasets/casia}
ravdess=${3:-../shared/datasets/ravdess}
export KERAS_BACKEND=tensorflow
mkdir -p edge_runtime/models

# build RUN MODEL [DYSER-TRAIN OPTIONS...]: train runs/RUN, export edge_runtime/models/MODEL.
build() {
  local run=runs/$1 model=edge_runtime/models/$2
  shift 2
  dyser-train --corpus emodb --data "$emodb" --corpus casia --data "$casia" \
    --corpus ravdess --data "$ravdess" --target all --protocol all --recipe default --seed 0 \
    --cache runs/cache --out "$run" --quiet "$@"
  dyser-export "$run/model.keras" --format tflite --quantize int8 \
    --calibration "$emodb/wav" --calibration "$casia" --calibration "$ravdess" --out "$model"
}

models=${MODELS:-dataset stream}
for which in $models; do  # refuse a typo before hours of training
  [[ $which == dataset || $which == stream ]] ||
    { echo "MODELS: unknown model '$which' (expected dataset and/or stream)" >&2; exit 2; }
done
for which in $models; do
  case $which in
    dataset) build multi-model dyser-multi-int8.tflite ;;
    stream)
      build multi-stream-model dyser-multi-stream-int8.tflite \
        --normalization stream --stream-training online
      ;;
  esac
done

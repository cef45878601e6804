#!/usr/bin/env bash
# The project's test command: ruff, the whole suite on the TensorFlow backend, then the
# backend-sensitive tests (marker `backends`) again on JAX and on PyTorch.
# DYSER_SLOW=1 includes the slow tests (real corpus, long training).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
TF_CPP_MIN_LOG_LEVEL=3 NO_MKDOCS_2_WARNING=1 python -m mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
if [ "${DYSER_SLOW:-0}" = 1 ]; then only=""; else only=" and not slow"; fi
KERAS_BACKEND=tensorflow python -m pytest -q -m "not nothing${only}" tests
for backend in jax torch; do
  KERAS_BACKEND=$backend python -m pytest -q -m "backends${only}" tests
done

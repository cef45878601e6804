#!/usr/bin/env bash
# The project's test command: ruff, the docs build, the whole suite on the TensorFlow
# backend, then the backend-sensitive tests (marker `backends`) again on JAX and PyTorch.
# DYSER_SLOW=1 includes the slow tests (real EmoDB corpus when ../shared/datasets/emodb exists).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
TF_CPP_MIN_LOG_LEVEL=3 NO_MKDOCS_2_WARNING=1 python -m mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
if [ "${DYSER_SLOW:-0}" = 1 ]; then select=(); backends="backends"; else
  select=(-m "not slow"); backends="backends and not slow"; fi
KERAS_BACKEND=tensorflow python -m pytest -q --durations=15 "${select[@]}" tests
for backend in jax torch; do
  KERAS_BACKEND=$backend python -m pytest -q -m "$backends" tests
done

#!/usr/bin/env bash
# Model throughput (benches/models.rs): the event encoder at batch 1, 64 and 1024, the predictors,
# and the MiniLM sentence encoder in process against Python onnxruntime on the same model file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORT_DYLIB_PATH="$(scripts/setup.sh)"
export ORT_DYLIB_PATH
VENV="${FIRESIGHT_CACHE:-$HOME/.cache/firesight}/venv-bench-models"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import onnxruntime, tokenizers, numpy' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-bench-models.txt
fi
export FIRESIGHT_BENCH_PYTHON="$VENV/bin/python"
cargo bench --locked --bench models

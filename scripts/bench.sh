#!/usr/bin/env bash
# Runs a benchmark in release mode (default: pipeline; `scripts/bench.sh tracker` for the
# tracker's cost); figures go in README.md and benches/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORT_DYLIB_PATH="$(scripts/setup.sh)"
export ORT_DYLIB_PATH
cargo bench --locked --bench "${1:-pipeline}"

#!/usr/bin/env bash
# Runs the pipeline benchmark in release mode; figures go in README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORT_DYLIB_PATH="$(scripts/setup.sh)"
export ORT_DYLIB_PATH
cargo bench --locked --bench pipeline

#!/usr/bin/env bash
# Streaming benchmark through a real tansu broker (release build); figures go in benches/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORT_DYLIB_PATH="$(scripts/setup.sh)"
export ORT_DYLIB_PATH
FIRESIGHT_TANSU="$(scripts/setup-tansu.sh)"
export FIRESIGHT_TANSU
cargo bench --locked --bench stream

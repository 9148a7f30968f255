#!/usr/bin/env bash
# Clusters and outliers against window size on the bundled archive (benches/patterns.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORT_DYLIB_PATH="$(scripts/setup.sh)"
export ORT_DYLIB_PATH
cargo bench --locked --bench patterns

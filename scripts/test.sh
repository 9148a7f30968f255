#!/usr/bin/env bash
# The README's test command: install what is missing, check formatting and lints, run every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORT_DYLIB_PATH="$(scripts/setup.sh --test)"
export ORT_DYLIB_PATH
# The Kafka tests start a real Kafka-protocol broker (tansu) on loopback.
FIRESIGHT_TANSU="$(scripts/setup-tansu.sh)"
export FIRESIGHT_TANSU
cargo fmt --check
# --all-features, so the live-service tests (kafka-live, weaviate-live) are linted too.
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
# Benches are type-checked by clippy above and run by scripts/bench.sh, not here.
cargo test --locked --workspace --lib --bins --tests
# A short coverage-guided run of every decoder's fuzz target (about a minute; no RocksDB build).
scripts/fuzz.sh

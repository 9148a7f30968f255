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
# The compose file, the Dockerfile and the Kubernetes manifests against their schemas and linter
# (seconds; no Docker engine or cluster needed).
scripts/check-deploy.sh
# --all-features, so the live-service tests (kafka-live, weaviate-live) are linted too.
# --profile test, so clippy's build scripts are the test build's own and RocksDB's C++ compiles
# once, not once per profile (Cargo.toml, [profile.dev.build-override]).
cargo clippy --locked --profile test --workspace --all-targets --all-features -- -D warnings
# Benches are type-checked by clippy above and run by scripts/bench.sh, not here.
cargo test --locked --workspace --lib --bins --tests
# schemathesis against the test build serving the sample (no third RocksDB compile): one minute,
# every operation, every check but positive_data_acceptance (whose findings are rules OpenAPI
# cannot express; README, "schemathesis against the live service"). Non-zero on any finding.
FIRESIGHT_BINARY="${CARGO_TARGET_DIR:-target}/debug/firesight" SCHEMATHESIS_SECONDS=60 \
  scripts/schemathesis.sh --exclude-checks positive_data_acceptance
# A short coverage-guided run of every decoder's fuzz target (about a minute; no RocksDB build).
scripts/fuzz.sh

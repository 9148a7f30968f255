#!/usr/bin/env bash
# Installs the tansu Kafka-protocol broker (0.6.0, Rust, Apache-2.0) that the Kafka tests start,
# idempotently, and prints the binary's path. Built from crates.io once (about 15 minutes on
# 2 cores) into a tools folder outside the clone, so every clone and CI run reuses it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec scripts/install-tool.sh tansu 0.6.0 --features dynostore

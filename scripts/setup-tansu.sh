#!/usr/bin/env bash
# Installs the tansu Kafka-protocol broker (0.6.0, Rust, Apache-2.0) that the Kafka tests start,
# idempotently, and prints the binary's path. Built from crates.io once (about 15 minutes on
# 2 cores) into a tools folder outside the clone, so every clone and CI run reuses it.
set -euo pipefail
VERSION=0.6.0
TOOLS="${FIRESIGHT_TOOLS:-/var/cache/firesight/tools}"
if ! mkdir -p "$TOOLS" 2>/dev/null || [ ! -w "$TOOLS" ]; then
  TOOLS="${FIRESIGHT_CACHE:-$HOME/.cache/firesight}/tools"
  mkdir -p "$TOOLS"
fi
BIN="$TOOLS/bin/tansu"
if [ ! -x "$BIN" ] || [ "$("$BIN" --version 2>/dev/null)" != "tansu $VERSION" ]; then
  echo "setup: building tansu $VERSION into $TOOLS (once; about 15 minutes)" >&2
  CARGO_TARGET_DIR="$TOOLS/build" cargo install -q --locked --root "$TOOLS" \
    tansu --version "$VERSION" --features dynostore >&2
  rm -rf "$TOOLS/build"
fi
echo "$BIN"

#!/usr/bin/env bash
# Installs cargo-fuzz (0.13.1) idempotently into the tools folder outside the clone and prints
# its path. The fuzz targets run on the stable toolchain with `--sanitizer none`.
set -euo pipefail
VERSION=0.13.1
TOOLS="${FIRESIGHT_TOOLS:-/var/cache/firesight/tools}"
if ! mkdir -p "$TOOLS" 2>/dev/null || [ ! -w "$TOOLS" ]; then
  TOOLS="${FIRESIGHT_CACHE:-$HOME/.cache/firesight}/tools"
  mkdir -p "$TOOLS"
fi
BIN="$TOOLS/bin/cargo-fuzz"
if [ ! -x "$BIN" ] || [ "$("$BIN" --version 2>/dev/null)" != "cargo-fuzz $VERSION" ]; then
  echo "setup: building cargo-fuzz $VERSION into $TOOLS (once; a few minutes)" >&2
  CARGO_TARGET_DIR="$TOOLS/build-fuzz" cargo install -q --locked --root "$TOOLS" \
    cargo-fuzz --version "$VERSION" >&2
  rm -rf "$TOOLS/build-fuzz"
fi
echo "$BIN"

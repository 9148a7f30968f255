#!/usr/bin/env bash
# Installs a Rust tool from crates.io idempotently into the tools folder outside the clone (so
# every clone and CI run reuses it) and prints the binary's path.
#   scripts/install-tool.sh CRATE VERSION [cargo install options...]
# The binary is named like the crate and must print "<crate> <version>" for --version.
set -euo pipefail
CRATE="$1"
VERSION="$2"
shift 2
TOOLS="${FIRESIGHT_TOOLS:-/var/cache/firesight/tools}"
if ! mkdir -p "$TOOLS" 2>/dev/null || [ ! -w "$TOOLS" ]; then
  TOOLS="${FIRESIGHT_CACHE:-$HOME/.cache/firesight}/tools"
  mkdir -p "$TOOLS"
fi
BIN="$TOOLS/bin/$CRATE"
if [ ! -x "$BIN" ] || [ "$("$BIN" --version 2>/dev/null)" != "$CRATE $VERSION" ]; then
  echo "setup: building $CRATE $VERSION into $TOOLS (once)" >&2
  CARGO_TARGET_DIR="$TOOLS/build-$CRATE" cargo install -q --locked --root "$TOOLS" \
    "$CRATE" --version "$VERSION" "$@" >&2
  rm -rf "$TOOLS/build-$CRATE"
fi
echo "$BIN"

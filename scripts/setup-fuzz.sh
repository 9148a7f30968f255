#!/usr/bin/env bash
# Installs cargo-fuzz (0.13.1) idempotently into the tools folder outside the clone and prints
# its path. The fuzz targets run on the stable toolchain with `--sanitizer none`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec scripts/install-tool.sh cargo-fuzz 0.13.1

#!/usr/bin/env bash
# The vector-index benchmark, one command: FireSight's native engine and hnsw_rs (Rust, release),
# then hnswlib 0.8.0 and FAISS 1.15.1 (PyPI) on the same files, then one table.
# Figures go in benches/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORT_DYLIB_PATH="$(scripts/setup.sh)"
export ORT_DYLIB_PATH
CACHE="${FIRESIGHT_CACHE:-$HOME/.cache/firesight}"
VENV="$CACHE/venv-ann-peers"
if ! "$VENV/bin/python" -c 'import hnswlib, faiss, numpy' 2>/dev/null; then
  echo "bench-ann: installing hnswlib, faiss-cpu and numpy into $VENV" >&2
  python3 -m venv "$VENV"
  # hnswlib ships only a source archive: pip builds it with the C++ toolchain setup.sh installed.
  "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-ann-peers.txt
fi
cargo bench --locked --bench ann
OUT="${CARGO_TARGET_DIR:-target}/ann"
"$VENV/bin/python" benches/ann_peers.py "$OUT" ../shared/data/ann/siftsmall

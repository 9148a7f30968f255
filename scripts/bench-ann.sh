#!/usr/bin/env bash
# The vector-index benchmark, one command: the event vector set written by the test-profile build
# (the one CI compiles; the release side below never compiles RocksDB), FireSight's native engine
# and hnsw_rs (Rust, release, the firesight-index crate alone), then hnswlib 0.8.0 and FAISS
# 1.15.1 (PyPI) on the same files, then one table.
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
OUT="${CARGO_TARGET_DIR:-target}/ann"
if [[ "${FIRESIGHT_ANN_SETS:-events108k}" == *events108k* ]]; then
  cargo run --locked --profile test --example ann_event_vectors -- "$OUT"
fi
cargo bench --locked -p firesight-index --bench ann
"$VENV/bin/python" benches/ann_peers.py "$OUT" ../shared/data/ann/siftsmall

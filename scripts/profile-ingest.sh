#!/usr/bin/env bash
# Where the HTTP file path's time goes: a service with the stations and BOM weather loaded (search
# off), the MODIS archive POSTed as one CSV body while `perf record` samples the process, then the
# seconds taken and the CPU samples by thread. Threads named `insert` are the pipelined index
# inserts; the rest is decoding, correlating, predicting, embedding, tracking and storing.
# Usage: scripts/profile-ingest.sh [binary] (default: the release build; CARGO_TARGET_DIR
# respected). Needs perf and ORT_DYLIB_PATH (scripts/setup.sh prints it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
binary="${1:-${CARGO_TARGET_DIR:-target}/release/firesight}"
work="$(mktemp -d)"
port="${FIRESIGHT_PROFILE_PORT:-18090}"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
FIRESIGHT__STORE__PATH="$work/db" FIRESIGHT__API__LISTEN="127.0.0.1:$port" \
  FIRESIGHT__SEARCH__ENABLED=false "$binary" serve --load \
  data/sample/australia_bom_weather_stations.csv \
  data/sample/australia_bom_daily_weather_2019-05_2020-06.csv >"$work/serve.log" 2>&1 &
pid=$!
until curl -sf "localhost:$port/readyz" >/dev/null; do
  # A service that failed to start (say, run from outside the repository) ends the script.
  kill -0 "$pid" 2>/dev/null || { tail -20 "$work/serve.log"; exit 1; }
  sleep 0.5
done
perf record -F 499 -p "$pid" -o "$work/perf.data" >/dev/null 2>&1 &
perf_pid=$!
sleep 1
start=$(date +%s.%N)
curl -sS -X POST --data-binary @data/sample/fire_archive_M6_96619.csv \
  -H 'content-type: text/csv' "localhost:$port/v1/events/firms"
echo
end=$(date +%s.%N)
kill -INT "$perf_pid"
wait "$perf_pid" || true
echo "seconds: $(echo "$end - $start" | bc)"
echo "samples (499 a second) by thread:"
perf report -i "$work/perf.data" --no-children -n --sort comm --stdio 2>&1 |
  grep -v '^#' | grep -v '^$' | head -12

#!/usr/bin/env bash
# A million detections through `firesight load` and through HTTP, each with every vector indexed
# when its figure stops (benches/README.md, "A million detections through file, HTTP and Kafka";
# the Kafka row is `FIRESIGHT_BENCH_COPIES=28 cargo bench --bench stream`). The input is the
# bundled MODIS archive 28 times, each copy 30 days after the one before, after the BOM stations
# and daily weather. The sentence index is off (it would embed a million texts beside the ingest).
# Usage: scripts/bench-million.sh [binary] (default: the release build; CARGO_TARGET_DIR
# respected). Needs ORT_DYLIB_PATH (scripts/setup.sh prints it), python3, curl, bc.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
binary="${1:-${CARGO_TARGET_DIR:-target}/release/firesight}"
work="$(mktemp -d)"
port="${FIRESIGHT_MILLION_PORT:-18090}"
pid=""
trap '[[ -n "$pid" ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; rm -rf "$work"' EXIT
stations=data/sample/australia_bom_weather_stations.csv
weather=data/sample/australia_bom_daily_weather_2019-05_2020-06.csv

# The archive 28 times, shifted, whole and in four parts (one HTTP body is capped at
# api.max_body_bytes, 64 MiB).
python3 - "$work" <<'EOF'
import csv, datetime, sys
work = sys.argv[1]
rows = list(csv.reader(open("data/sample/fire_archive_M6_96619.csv")))
header, body = rows[0], rows[1:]
at = header.index("acq_date")
out = []
for copy in range(28):
    for row in body:
        row = list(row)
        day = datetime.date.fromisoformat(row[at]) + datetime.timedelta(days=30 * copy)
        row[at] = day.isoformat()
        out.append(row)
def write(path, part):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(part)
write(f"{work}/million.csv", out)
quarter = (len(out) + 3) // 4
for i in range(4):
    write(f"{work}/part{i}.csv", out[i * quarter:(i + 1) * quarter])
print(f"{len(out)} detections")
EOF
rows=$(($(wc -l <"$work/million.csv") - 1))
export FIRESIGHT__SEARCH__INDEX_EVENTS=false
since() { echo "$(date +%s.%N) - $1" | bc; }

# File: stations and weather, then the million, stored and indexed; the snapshot written.
start=$(date +%s.%N)
FIRESIGHT__STORE__PATH="$work/file-db" "$binary" load "$stations" "$weather" "$work/million.csv" \
  >"$work/load.log" 2>&1 || { tail -20 "$work/load.log"; exit 1; }
secs=$(since "$start")
echo "firesight load: $rows detections (after stations and weather) in $secs s: $(echo "$rows / $secs" | bc) /s"

# HTTP: a running service, stations and weather POSTed first, then the four parts one after
# another; each answers once its detections are searchable.
FIRESIGHT__STORE__PATH="$work/http-db" FIRESIGHT__API__LISTEN="127.0.0.1:$port" \
  "$binary" serve >"$work/serve.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
until curl -fs "$base/readyz" >/dev/null; do
  kill -0 "$pid" 2>/dev/null || { tail -20 "$work/serve.log"; exit 1; }
  sleep 0.5
done
curl -fs -H 'content-type: text/csv' --data-binary "@$stations" "$base/v1/stations" >/dev/null
curl -fs -H 'content-type: text/csv' --data-binary "@$weather" "$base/v1/events/weather" >/dev/null
start=$(date +%s.%N)
for i in 0 1 2 3; do
  curl -fs -H 'content-type: text/csv' --data-binary "@$work/part$i.csv" "$base/v1/events/firms" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["rejected_total"] == 0, r; print("  part: accepted", r["accepted"])'
done
secs=$(since "$start")
echo "HTTP: $rows detections in four bodies in $secs s: $(echo "$rows / $secs" | bc) /s"
curl -fs "$base/metrics" | grep -E '^firesight_(index_vectors|store_events) '

#!/usr/bin/env bash
# A mixed soak against a live FireSight (release build, the bundled Australian archive loaded):
# four wrk clients side by side, 16 connections each (64 in all), for SOAK_MINUTES (30):
#   ingest    POST /v1/events/firms, 20 rows of the shared VIIRS 7-day file per request, in order,
#             cycling (after one pass every row is a duplicate the service must recognise);
#   similar   GET /v1/fires/{id}/similar?k=10 over 2,000 real event ids;
#   search    POST /v1/search, natural-language questions (each goes through the sentence encoder);
#   clusters  GET /v1/clusters over one day of the sample (August and September 2019), a different
#             day each.
# Reports, per client: requests, answers by class (5xx must be 0), socket errors, p50/p99/max;
# and the service's RSS every 10 s, split into anonymous (heap) and file-backed (mmapped files)
# memory, with the slope of each over the second half of the run. The service inherits the
# environment, so `MALLOC_ARENA_MAX=2 scripts/soak.sh` tells allocator fragmentation from growth.
#   scripts/soak.sh                  (30 minutes)
#   SOAK_MINUTES=2 scripts/soak.sh   (a quick look)
# Event texts are left out of the search index (as in scripts/schemathesis.sh): through the
# sentence encoder they take ~17 minutes, during which search answers 503. Questions still go
# through the encoder; they search the incidents.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MINUTES="${SOAK_MINUTES:-30}"
if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq wrk >/dev/null
fi
export FIRESIGHT__SEARCH__INDEX_EVENTS=false
# shellcheck source=scripts/serve-sample.sh
source scripts/serve-sample.sh
# shellcheck source=scripts/sample-ids.sh
source scripts/sample-ids.sh
VIIRS="${FIRESIGHT_SHARED_DATA:-../shared/data}/firms/SUOMI_VIIRS_C2_USA_contiguous_and_Hawaii_7d.2025-11-05.csv"
[ -f "$VIIRS" ] || { echo "the soak posts rows of $VIIRS, which is missing" >&2; exit 1; }
OUT="$STORE/soak"
mkdir -p "$OUT"

# What every client reports: answers by status class, counted on each thread and summed.
cat >"$OUT/report.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) c2 = 0; c4 = 0; c5 = 0; other = 0 end
function response(status, headers, body)
  if status >= 500 then c5 = c5 + 1 elseif status >= 400 then c4 = c4 + 1
  elseif status >= 200 and status < 300 then c2 = c2 + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local s2, s4, s5, so = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s2 = s2 + t:get("c2"); s4 = s4 + t:get("c4"); s5 = s5 + t:get("c5"); so = so + t:get("other")
  end
  local e = summary.errors
  io.write(string.format("%-9s requests %d (%.1f/s), 2xx %d, 4xx %d, 5xx %d, other %d, socket errors %d (timeouts %d), p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    KIND, summary.requests, summary.requests / (summary.duration / 1e6), s2, s4, s5, so,
    e.connect + e.read + e.write + e.timeout, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
LUA

# ingest: the file's rows in bodies of 20, each body a complete CSV with the header.
python3 - "$VIIRS" "$OUT/ingest_bodies.lua" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
header, rows = lines[0], lines[1:]
with open(sys.argv[2], "w") as out:
    out.write("bodies = {\n")
    for i in range(0, len(rows), 20):
        body = "\n".join([header] + rows[i:i + 20]) + "\n"
        out.write("[==[" + body + "]==],\n")
    out.write("}\n")
PY
cat >"$OUT/ingest.lua" <<LUA
KIND = "ingest"
dofile("$OUT/report.lua")
dofile("$OUT/ingest_bodies.lua")
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/events/firms", {["content-type"] = "text/csv"}, bodies[(n % #bodies) + 1])
end
LUA
cat >"$OUT/similar.lua" <<LUA
KIND = "similar"
dofile("$OUT/report.lua")
dofile("$SIMILAR_LUA")
LUA
cat >"$OUT/search.lua" <<LUA
KIND = "search"
dofile("$OUT/report.lua")
local questions = {
  "the big November 2018 fire in Butte County",
  "large fires in Los Angeles County in 2020",
  "grass fire near a highway in October",
  "fires that burned more than 100000 acres",
  "lightning complex fires in August 2020 in northern California",
  "small fires in San Diego County",
  "wildfire that destroyed many structures",
  "fires in Riverside County in 2019",
}
local n = 0
request = function()
  n = n + 1
  local q = questions[(n % #questions) + 1]
  return wrk.format("POST", "/v1/search", {["content-type"] = "application/json"},
    '{"query":"' .. q .. '","k":10}')
end
LUA
cat >"$OUT/clusters.lua" <<LUA
KIND = "clusters"
dofile("$OUT/report.lua")
local n = 0
request = function()
  n = n + 1
  -- a day of the sample, 2019-08-01 to 2019-09-30
  local t = os.time({year = 2019, month = 8, day = 1, hour = 12}) + (n % 61) * 86400
  local from = os.date("!%Y-%m-%dT00:00:00Z", t)
  local to = os.date("!%Y-%m-%dT00:00:00Z", t + 86400)
  return wrk.format("GET", "/v1/clusters?from=" .. from .. "&to=" .. to)
end
LUA

events() { curl -fs "$BASE/metrics" | awk '/^firesight_store_events /{print $2}'; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$SERVICE_PID/status"; }
# RSS, and its anonymous (heap, stacks) and file-backed (mmapped index and store files) parts, KiB.
rss_parts() { awk '/^(VmRSS|RssAnon|RssFile):/{printf "\t%s", $2}' "/proc/$SERVICE_PID/status"; }
echo "soak: $MINUTES min, 64 connections; $(events) events stored, RSS $(( $(rss_kib) / 1024 )) MiB" >&2
: >"$OUT/rss.tsv"
(
  start=$(date +%s)
  while kill -0 "$SERVICE_PID" 2>/dev/null; do
    printf '%s%s\n' "$(( $(date +%s) - start ))" "$(rss_parts)" >>"$OUT/rss.tsv"
    sleep 10
  done
) &
SAMPLER=$!
PIDS=()
for kind in ingest similar search clusters; do
  wrk -t1 -c16 -d"${MINUTES}m" --timeout 60s -s "$OUT/$kind.lua" "$BASE" >"$OUT/$kind.out" 2>&1 &
  PIDS+=("$!")
done
failed=0
for pid in "${PIDS[@]}"; do wait "$pid" || failed=1; done
kill "$SAMPLER" 2>/dev/null || true
for kind in ingest similar search clusters; do grep -h "^$kind " "$OUT/$kind.out" || { cat "$OUT/$kind.out"; failed=1; }; done
python3 - "$OUT/rss.tsv" <<'PY'
import sys
# seconds, VmRSS, RssAnon, RssFile (KiB); a part the kernel does not report is left out.
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
half = [r for r in rows if r[0] >= rows[-1][0] / 2]
def slope(col):
    pts = [(r[0], r[col]) for r in half if len(r) > col]
    if len(pts) < 2:
        return float("nan")
    mx = sum(t for t, _ in pts) / len(pts)
    my = sum(k for _, k in pts) / len(pts)
    return sum((t - mx) * (k - my) for t, k in pts) / max(1e-9, sum((t - mx) ** 2 for t, _ in pts))
for col, name in ((1, "RSS"), (2, "  anonymous"), (3, "  file-backed")):
    if all(len(r) > col for r in rows):
        print(f"{name}: start {rows[0][col] / 1024:.0f} MiB, peak {max(r[col] for r in rows) / 1024:.0f} MiB, "
              f"end {rows[-1][col] / 1024:.0f} MiB; slope over the second half {slope(col) * 3600 / 1024:+.1f} MiB/h")
print(f"({len(rows)} samples, every 10 s; anonymous is the heap and stacks, file-backed the mmapped files)")
PY
echo "events stored at the end: $(events); service log lines at WARN or above: $(grep -c -E ' (WARN|ERROR) ' "$STORE/service.log" || true)"
grep -E ' (WARN|ERROR) ' "$STORE/service.log" | cut -c1-300 | sort | uniq -c | sort -rn | head -5 || true
if grep -q -E 'panicked' "$STORE/service.log"; then echo "the service log has a panic" >&2; failed=1; fi
kill -0 "$SERVICE_PID" 2>/dev/null || { echo "the service is gone" >&2; failed=1; }
exit "$failed"

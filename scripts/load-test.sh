#!/usr/bin/env bash
# 64 concurrent clients for 60 s on GET /v1/fires/{id}/similar against a live FireSight with the
# bundled Australian archive loaded (wrk, from Debian). Each request asks for a different event,
# drawn from 2,000 real ids. Prints wrk's report: requests/s, latency percentiles, errors.
#   scripts/load-test.sh [connections] [seconds]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CONNECTIONS="${1:-64}"
SECONDS_RUN="${2:-60}"
if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq wrk >/dev/null
fi
# shellcheck source=scripts/serve-sample.sh
source scripts/serve-sample.sh
# shellcheck source=scripts/sample-ids.sh
source scripts/sample-ids.sh
cat >"$STORE/similar.lua" <<LUA
dofile("$SIMILAR_LUA")
done = function(summary, latency)
  io.write(string.format("requests %d, non-200 %d, socket errors %d, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
LUA
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --latency -s "$STORE/similar.lua" "$BASE"

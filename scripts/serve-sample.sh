# Sourced by the load and schemathesis scripts: builds the release binary (or takes the one
# FIRESIGHT_BINARY names, as CI does with the test build's, so no third RocksDB compile) and
# serves the bundled Australian sample from a throw-away store on 127.0.0.1:$PORT until the
# caller exits. Defines BASE (the URL) once the service answers /readyz.
if ! command -v curl >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq curl >/dev/null
fi
ORT_DYLIB_PATH="$(scripts/setup.sh)"
export ORT_DYLIB_PATH
BINARY="${FIRESIGHT_BINARY:-}"
if [ -z "$BINARY" ]; then
  cargo build --release --locked --bin firesight >&2
  BINARY="${CARGO_TARGET_DIR:-target}/release/firesight"
fi
PORT="${PORT:-18080}"
STORE="$(mktemp -d)"
export FIRESIGHT__API__LISTEN="127.0.0.1:$PORT"
export FIRESIGHT__STORE__PATH="$STORE/db"
"$BINARY" serve --load \
  data/sample/australia_bom_weather_stations.csv \
  data/sample/australia_bom_daily_weather_2019-05_2020-06.csv \
  data/sample/fire_archive_M6_96619.csv >"$STORE/service.log" 2>&1 &
SERVICE_PID=$!
trap 'kill "$SERVICE_PID" 2>/dev/null; wait "$SERVICE_PID" 2>/dev/null; rm -rf "$STORE" ${CONFIG:+"$CONFIG"}' EXIT
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 600); do
  if curl -fs "$BASE/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$SERVICE_PID" 2>/dev/null || { cat "$STORE/service.log" >&2; exit 1; }
  sleep 0.5
done
curl -fs "$BASE/readyz" >/dev/null || { echo "the service did not become ready" >&2; exit 1; }
echo "serving the sample at $BASE ($(curl -fs "$BASE/readyz"))" >&2

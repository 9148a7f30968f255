#!/usr/bin/env bash
# Coverage-guided fuzzing of every input decoder (fuzz/, cargo-fuzz on the stable toolchain with
# --sanitizer none), seeded from the real files, each target under a 256 MiB memory limit.
#   scripts/fuzz.sh            a short run of every target (CI: 12 s each)
#   scripts/fuzz.sh 1800       a long run by hand (30 minutes each)
#   FUZZ_TARGETS=kafka_codec scripts/fuzz.sh 60   one target
# The corpus grows across runs outside the clone; a crash stops the run, is saved under
# fuzz/artifacts/<target>/, and becomes a unit test once fixed. The last lines per target are
# libFuzzer's final statistics (executions, corpus size, peak RSS).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_EACH="${1:-12}"
CARGO_FUZZ="$(scripts/setup-fuzz.sh)"
WORK="${FIRESIGHT_FUZZ_DIR:-/var/cache/firesight/fuzz}"
if ! mkdir -p "$WORK" 2>/dev/null || [ ! -w "$WORK" ]; then
  WORK="${FIRESIGHT_CACHE:-$HOME/.cache/firesight}/fuzz"
  mkdir -p "$WORK"
fi
# Its own target directory: fuzz builds use other compiler flags than the service's.
export CARGO_TARGET_DIR="$WORK/target"
SHARED="${FIRESIGHT_SHARED_DATA:-../shared/data}"

# seed TARGET PREFIX FILE...: the first 40 lines of each real file, behind the target's
# prefix bytes (the chunk cut, and for ndjson the kind).
seed() {
  local target="$1" prefix="$2"
  shift 2
  mkdir -p "$WORK/corpus/$target"
  for file in "$@"; do
    [ -f "$file" ] || continue
    { printf "$prefix"; head -n 40 "$file"; } >"$WORK/corpus/$target/seed-$(basename "$file")"
  done
}
seed firms_csv '\x40\x00' data/sample/fire_archive_M6_96619.csv "$SHARED"/firms/*.csv
seed bom_weather '\x80\x01' data/sample/australia_bom_daily_weather_2019-05_2020-06.csv
seed bom_stations '\x80\x01' data/sample/australia_bom_weather_stations.csv
seed calfire '' data/sample/calfire_mapdataall.csv data/sample/California_Fire_Incidents.csv
mkdir -p "$WORK/corpus/ndjson"
printf '\x00\x30\x00{"latitude":-11.807,"longitude":142.0583,"acquired_at":"2019-08-01T00:56:00Z","satellite":"Terra","instrument":"MODIS","brightness_k":313.0,"brightness_background_k":297.3,"scan_km":1.0,"track_km":1.0,"confidence_percent":48.0,"confidence":"nominal","frp_mw":6.6,"daytime":true,"version":"6.3","detection_type":0}\n' >"$WORK/corpus/ndjson/seed-detection"
printf '\x01\x30\x00{"station_id":1019,"station_name":"KALUMBURU","date":"2019-08-01","min_temp_c":17.0,"max_temp_c":31.2,"rain_mm":0.0,"max_gust_kmh":null,"temp_9am_c":22.0,"rh_9am_pct":40.0,"wind_9am_kmh":11.0,"temp_3pm_c":30.1,"rh_3pm_pct":20.0,"wind_3pm_kmh":13.0,"wind_dir_3pm":"E","mslp_3pm_hpa":1012.4}\n' >"$WORK/corpus/ndjson/seed-weather"
printf '\x02\x30\x00{"sensor_id":"s-1","latitude":-33.9,"longitude":151.2,"observed_at":"2019-11-08T03:00:00Z","temperature_c":41.5,"humidity_pct":9.0,"pm25_ugm3":310.0,"wind_kmh":null}\n' >"$WORK/corpus/ndjson/seed-sensor"
printf '\x03\x30\x00{"id":1019,"name":"KALUMBURU","region":"WA","latitude":-14.30,"longitude":126.64,"height_m":23.0}\n' >"$WORK/corpus/ndjson/seed-station"

# kafka_codec: each NDJSON seed as a JSON record, and the same record Confluent-framed in Avro
# under its bundled schema id (encoded here from the schema files).
mkdir -p "$WORK/corpus/kafka_codec"
python3 - "$WORK/corpus" <<'PY'
import json, struct, sys, datetime
corpus = sys.argv[1]
def zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
def millis(text):
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
def value(kind, v):
    if isinstance(kind, list):
        if v is None:
            return zigzag(kind.index("null"))
        branch = next(i for i, k in enumerate(kind) if k != "null")
        return zigzag(branch) + value(kind[branch], v)
    if isinstance(kind, dict):
        if kind.get("logicalType") == "timestamp-millis":
            return zigzag(millis(v))
        if kind.get("logicalType") == "date":
            return zigzag((datetime.date.fromisoformat(v) - datetime.date(1970, 1, 1)).days)
        return value(kind["type"], v)
    if kind == "double":
        return struct.pack("<d", float(v))
    if kind == "float":
        return struct.pack("<f", float(v))
    if kind in ("int", "long"):
        return zigzag(int(v))
    if kind == "boolean":
        return b"\x01" if v else b"\x00"
    if kind == "string":
        data = str(v).encode()
        return zigzag(len(data)) + data
    raise ValueError(kind)
for seed, kind_byte, schema, schema_id in [
    ("detection", 0, "fire_detection_v1", 3),
    ("weather", 1, "weather_observation_v2", 6),
    ("sensor", 2, "sensor_reading_v1", 5),
]:
    raw = open(f"{corpus}/ndjson/seed-{seed}", "rb").read()[3:].strip()
    record = json.loads(raw)
    fields = json.load(open(f"schemas/{schema}.avsc"))["fields"]
    datum = b"".join(value(f["type"], record.get(f["name"])) for f in fields)
    with open(f"{corpus}/kafka_codec/seed-{seed}-json", "wb") as out:
        out.write(bytes([kind_byte]) + raw)
    with open(f"{corpus}/kafka_codec/seed-{seed}-avro", "wb") as out:
        out.write(bytes([kind_byte, 0]) + struct.pack(">I", schema_id) + datum)
PY

# query: the evaluation questions; outbox_record: records as the drainer stores them; windows:
# a few detection sequences (5 settings bytes, then 12 bytes a step).
python3 - "$WORK/corpus" tests/data/search_queries.json <<'PY'
import json, os, random, struct, sys
corpus, queries = sys.argv[1], sys.argv[2]
for name in ("query", "outbox_record", "windows"):
    os.makedirs(os.path.join(corpus, name), exist_ok=True)
for i, q in enumerate(json.load(open(queries))["queries"]):
    open(os.path.join(corpus, "query", f"seed-{i}"), "w").write(q["query"])
def b(x):
    return struct.pack(">I", len(x)) + x
def record(topic, partition, key, headers, payload):
    out = b(topic)
    out += b"\x00" if partition is None else b"\x01" + struct.pack(">i", partition)
    out += b"\x00" if key is None else b"\x01" + b(key)
    out += struct.pack(">I", len(headers)) + b"".join(b(n) + b(v) for n, v in headers)
    return out + b(payload)
seeds = [
    record(b"wildfire-enriched-events", None, b"fd_1", [], b'{"event_id":"fd_1"}'),
    record(b"wildfire-dead-letters", 3, b"k", [(b"firesight.field", b"latitude"), (b"firesight.reason", b"out of range")], b"\x00\x01\x02"),
]
for i, seed in enumerate(seeds):
    open(os.path.join(corpus, "outbox_record", f"seed-{i}"), "wb").write(seed)
rng = random.Random(7)
for i in range(4):
    steps = bytes(rng.randrange(256) for _ in range(12 * 40))
    open(os.path.join(corpus, "windows", f"seed-{i}"), "wb").write(bytes([0, 0, 0, 0, i]) + steps)
PY

# debezium: change events of each kind in each shape (a control byte: the kind in the low two
# bits, the key's length above them; then the key and the value).
mkdir -p "$WORK/corpus/debezium"
python3 - "$WORK/corpus/debezium" <<'PY'
import json, sys
out = sys.argv[1]
key = b'{"id":7}'
row = {"id": 7, "latitude": 30.943, "longitude": -88.017, "brightness": 303.2, "scan": 1.0,
       "track": 1.0, "acq_date": 18535, "acq_time": "0405", "satellite": "T", "confidence": "54",
       "version": "6.0NRT", "bright_t31": 286.7, "frp": 7.7, "daynight": "N"}
schema = {"type": "struct", "fields": [
    {"type": "int32", "name": "io.debezium.time.Date", "field": "acq_date"},
    {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}, "field": "brightness"}]}
decimal_row = dict(row, brightness="dnA=")
weather = {"id": 3, "station_id": 66037, "station_name": "Sydney Airport", "date": 18208, "max_temp_c": 31.4}
sensor = {"id": 9, "sensor_id": "s-1", "latitude": -33.9, "longitude": 151.2, "observed_at": 1573182000000000}
def envelope(op, before, after):
    return {"before": before, "after": after, "source": {"connector": "postgresql", "table": "t"}, "op": op, "ts_ms": 1}
seeds = {
    "insert": (0, key, envelope("c", None, row)),
    "update-schema": (0, key, {"schema": {"type": "struct", "fields": [dict(schema, field="after")]}, "payload": envelope("u", row, decimal_row)}),
    "delete": (0, None, envelope("d", {"id": 7}, None)),
    "unwrapped": (0, None, dict(row, __deleted="false", __op="c")),
    "unwrapped-schema": (0, key, {"schema": schema, "payload": decimal_row}),
    "tombstone": (0, key, None),
    "weather": (1, None, envelope("r", None, weather)),
    "sensor": (2, key, sensor),
}
for name, (kind, k, value) in seeds.items():
    k = k or b""
    body = b"" if value is None else json.dumps(value).encode()
    open(f"{out}/seed-{name}", "wb").write(bytes([(len(k) << 2) | kind]) + k + body)
PY

# snapshot: a small graph's snapshot without its checksum (fuzz/seeds/, kept loadable by the
# index crate's test `the_snapshot_fuzz_seed_is_a_snapshot_this_build_reads`); query_params:
# query strings as the routes take them.
mkdir -p "$WORK/corpus/snapshot" "$WORK/corpus/query_params"
cp fuzz/seeds/snapshot-small-graph "$WORK/corpus/snapshot/seed-small-graph"
i=0
for query in 'from=2019-12-30&to=2019-12-31T12:00:00Z&bbox=140,-39,154,-28&source=Terra,Aqua&min_confidence=nominal' \
  'limit=100&cursor=00000000000000ff0001&f=geojson' \
  'datetime=2019-12-30T00:00:00Z/..&bbox=140,-39,0,154,-28,100&limit=10' \
  'incident=inc_2019_0001&members=true&k=10'; do
  printf '%s' "$query" >"$WORK/corpus/query_params/seed-$i"
  i=$((i + 1))
done

for target in ${FUZZ_TARGETS:-firms_csv bom_weather bom_stations ndjson calfire kafka_codec debezium outbox_record query windows snapshot query_params}; do
  echo "== $target (${SECONDS_EACH} s)"
  "$CARGO_FUZZ" fuzz run --sanitizer none "$target" "$WORK/corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=256 -malloc_limit_mb=256 -max_len=16384 \
    -print_final_stats=1 >"$WORK/$target.log" 2>&1 || {
    tail -n 60 "$WORK/$target.log"
    echo "fuzz: $target failed; the input is under fuzz/artifacts/$target/" >&2
    exit 1
  }
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$WORK/$target.log"
done

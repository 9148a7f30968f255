#!/usr/bin/env bash
# The README's run command: install what is missing, build, and serve on the embedded default
# (RocksDB + local HNSW, no Kafka, no Weaviate) with the bundled Australian sample loaded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORT_DYLIB_PATH="$(scripts/setup.sh)"
export ORT_DYLIB_PATH
cargo build --release --locked --bin firesight
exec "${CARGO_TARGET_DIR:-target}/release/firesight" serve --load \
  data/sample/australia_bom_weather_stations.csv \
  data/sample/australia_bom_daily_weather_2019-05_2020-06.csv \
  data/sample/fire_archive_M6_96619.csv \
  data/sample/California_Fire_Incidents.csv \
  data/sample/calfire_mapdataall.csv "$@"

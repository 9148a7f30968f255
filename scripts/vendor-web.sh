#!/usr/bin/env bash
# Re-fetches the map's vendored libraries from the npm registry and checks them against
# src/api/assets/map/vendor/SHA256SUMS: MapLibre GL JS 5.24.1 (BSD-3-Clause; its UMD build, one file
# with its worker inlined) and world-atlas 2.0.2 (Natural Earth countries at 1:50m as TopoJSON;
# ISC, the data public domain). The files are committed, so builds need no npm; run this to
# verify them; `--install` copies them in and rewrites SHA256SUMS (after a version change here
# and in src/api/map.rs and index.html).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENDOR=src/api/assets/map/vendor
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent maplibre-gl@5.24.1 world-atlas@2.0.2 >/dev/null)
mkdir -p "$work/maplibre" "$work/atlas"
tar xzf "$work"/maplibre-gl-5.24.1.tgz -C "$work/maplibre"
tar xzf "$work"/world-atlas-2.0.2.tgz -C "$work/atlas"
mkdir -p "$work/out/maplibre-gl-5.24.1" "$work/out/world-atlas-2.0.2"
cp "$work"/maplibre/package/dist/maplibre-gl.js "$work"/maplibre/package/dist/maplibre-gl.css \
  "$work"/maplibre/package/LICENSE.txt "$work/out/maplibre-gl-5.24.1/"
cp "$work"/atlas/package/countries-50m.json "$work"/atlas/package/LICENSE "$work/out/world-atlas-2.0.2/"
if [ "${1:-}" = "--install" ]; then
  cp -r "$work"/out/* "$VENDOR/"
  (cd "$VENDOR" && sha256sum */* > SHA256SUMS)
  echo "vendor-web: installed into $VENDOR"
else
  (cd "$work/out" && sha256sum -c "$OLDPWD/$VENDOR/SHA256SUMS")
fi

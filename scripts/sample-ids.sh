# Sourced after scripts/serve-sample.sh by the load scripts: writes 2,000 real event ids of the
# served sample, one per line, to $IDS (in the throw-away store's directory).
IDS="$STORE/ids.txt"
: >"$IDS"
cursor=""
while [ "$(wc -l <"$IDS")" -lt 2000 ]; do
  page="$(curl -fs "$BASE/v1/fires?limit=1000${cursor:+&cursor=$cursor}")"
  python3 -c 'import json,sys; [print(e["event_id"]) for e in json.load(sys.stdin)["items"]]' <<<"$page" >>"$IDS"
  cursor="$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("next_cursor",""))' <<<"$page")"
  [ -n "$cursor" ] || break
done
# And $SIMILAR_LUA: a wrk request function asking GET /v1/fires/{id}/similar?k=10 for those ids
# in a scattered order, for the load scripts to dofile.
SIMILAR_LUA="$STORE/similar-requests.lua"
cat >"$SIMILAR_LUA" <<LUA
local ids = {}
for line in io.lines("$IDS") do ids[#ids + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/fires/" .. ids[(n * 7919) % #ids + 1] .. "/similar?k=10")
end
LUA

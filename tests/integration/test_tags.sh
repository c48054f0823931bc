#!/usr/bin/env bash
# "latest N" when tags are not versions: the newest N by the images' creation time (their config's
# "created"; for a multi-arch index, its linux/amd64 image's), combined with a regex; and when every
# tag is a version, by version with no extra request.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
# tag:created; listed in an order that is neither by name nor by time
for spec in nightly-a:2024-01-01T00:00:00Z stable:2024-02-01T10:00:00+02:00 nightly-b:2024-03-01T00:00:00.5Z \
  old:2023-12-01T00:00:00Z; do
  make_layout "$L" "${spec%%:*}" --layers 1 --layer-size 20000 --created "${spec#*:}" >/dev/null
  seed "$L" "${spec%%:*}" "$SRC_ADDR/ns/app:${spec%%:*}"
done
make_layout "$L" multi --layers 1 --layer-size 20000 --platforms linux/arm64,linux/amd64 --created 2024-04-01T00:00:00Z >/dev/null
seed "$L" multi "$SRC_ADDR/ns/app:multi"
for v in 1.0.0 1.2.0 1.10.0; do
  make_layout "$L" "$v" --layers 1 --layer-size 20000 --created 2020-01-01T00:00:00Z >/dev/null
  seed "$L" "$v" "$SRC_ADDR/ns/versions:$v"
done
cd "$IM_WORK"
echo "{\"$SRC_ADDR\": {\"insecure\": true}, \"$DST_ADDR\": {\"insecure\": true}}" >auth.json
tags() { curl -sf "http://$DST_ADDR/v2/$1/tags/list" | jq -r '.tags | sort | join(" ")'; }
run() {
  echo "$1" >images.json
  im_run "$IM_BIN" --auth auth.json --images images.json -r 0 --log "" -v
}

rc=0
run "{\"$SRC_ADDR/ns/app\": {\"destination\": \"$DST_ADDR/two/app\", \"tags\": {\"latest\": 2}}}" >two.out 2>&1 || rc=$?
cat two.out
assert_eq "$rc" 0 "latest 2 by creation time"
assert_eq "$(tags two/app)" "multi nightly-b" "the two newest images: the index (its amd64 image, 2024-04) and nightly-b (2024-03)"

rc=0
run "{\"$SRC_ADDR/ns/app\": {\"destination\": \"$DST_ADDR/nightly/app\", \"tags\": {\"regex\": \"nightly-.*|stable\", \"latest\": 2}}}" >nightly.out 2>&1 || rc=$?
assert_eq "$rc" 0 "regex, then latest 2"
assert_eq "$(tags nightly/app)" "nightly-b stable" "stable (2024-02-01T08:00Z) is newer than nightly-a: time zones count"

rc=0
run "{\"$SRC_ADDR/ns/versions\": {\"destination\": \"$DST_ADDR/versions/app\", \"tags\": {\"latest\": 2}}}" >versions.out 2>&1 || rc=$?
assert_eq "$rc" 0 "latest 2 among versions"
assert_eq "$(tags versions/app)" "1.10.0 1.2.0" "versions: by version (1.10.0 > 1.2.0), not by name"
assert_eq "$(grep -cE '"(GET|HEAD) /v2/ns/versions/manifests/1.0.0 ' "$SRC_LOG" || true)" 0 "versions: the unselected tag was never read"
[ "$(grep -cE '"(GET|HEAD) /v2/ns/versions/manifests/1.10.0 ' "$SRC_LOG" || true)" -gt 0 ] || fail "the registry log does not show manifest requests at all"
echo "tags: OK"

#!/usr/bin/env bash
# --platforms: by default an index is copied whole (digest preserved) and a selection that would
# change it is refused with a clear message; with --filter-index a filtered index (new digest) is
# written, says so, and carries only the chosen platforms; single-platform images are unaffected;
# `verify --platforms` takes the filtered index for what it is.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
make_layout "$L" multi --layers 1 --layer-size 100000 --platforms linux/amd64,linux/arm64,linux/s390x --seed pl >/dev/null
make_layout "$L" single --layers 1 --layer-size 100000 --seed ps >/dev/null
seed "$L" multi "$SRC_ADDR/ns/multi:1"
seed "$L" single "$SRC_ADDR/ns/single:1"
cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
cat >"$IM_WORK/images.json" <<JSON
{"$SRC_ADDR/ns/multi:1": "$DST_ADDR/ns/multi", "$SRC_ADDR/ns/single:1": "$DST_ADDR/ns/single"}
JSON
run() { im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" -r 0 --log "" "$@"; }

rc=0
run --platforms linux/amd64,linux/arm64 >"$IM_WORK/out1" 2>&1 || rc=$?
cat "$IM_WORK/out1"
assert_eq "$rc" 1 "a selection that would change the index is refused without --filter-index"
grep -q "has platforms outside --platforms.*--filter-index" "$IM_WORK/out1" || fail "no clear message"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://$DST_ADDR/v2/ns/multi/manifests/1")" 404 "nothing pushed for the refused index"
assert_eq "$(raw_digest "$DST_ADDR/ns/single:1")" "$(raw_digest "$SRC_ADDR/ns/single:1")" "single-platform image copied as is"

rc=0
run --platforms linux/amd64,linux/arm64 --filter-index >"$IM_WORK/out2" 2>&1 || rc=$?
cat "$IM_WORK/out2"
assert_eq "$rc" 0 "--filter-index: copied"
grep -q "writing a FILTERED index with only linux/amd64,linux/arm64" "$IM_WORK/out2" || fail "the run does not say the index changed"
src=$(raw_digest "$SRC_ADDR/ns/multi:1")
dst=$(raw_digest "$DST_ADDR/ns/multi:1")
[ "$src" != "$dst" ] || fail "filtered index has the original digest"
assert_eq "$(raw_manifest "$DST_ADDR/ns/multi:1" | jq -r '[.manifests[].platform.architecture] | join(",")')" "amd64,arm64" "only the chosen platforms"
pull_all_platforms "$DST_ADDR/ns/multi:1"
pass "filtered index pulls back with verified blobs"
s390=$(raw_manifest "$SRC_ADDR/ns/multi:1" | jq -r '.manifests[] | select(.platform.architecture == "s390x") | .digest')
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$DST_ADDR/v2/ns/multi/manifests/$s390")" 404 "the dropped platform was not copied"

# verify: without --platforms the filtered index differs; with the same --platforms it is the
# expected image, whole (--deep); with other platforms it is not.
verify() { im_run "$IM_BIN" verify --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" "$@"; }
rc=0
verify >"$IM_WORK/v1" 2>&1 || rc=$?
assert_eq "$rc" 1 "verify without --platforms: the filtered index differs"
grep -Eq "^DIFFERENT +$SRC_ADDR/ns/multi:1 " "$IM_WORK/v1" || fail "verify without --platforms: no DIFFERENT row"
rc=0
verify --platforms linux/amd64,linux/arm64 --deep >"$IM_WORK/v2" 2>&1 || rc=$?
cat "$IM_WORK/v2"
assert_eq "$rc" 0 "verify --platforms --deep: exit 0"
grep -Eq "^SAME +$SRC_ADDR/ns/multi:1 +$DST_ADDR/ns/multi:1 +${dst:0:19} \(filtered\) +${dst:0:19}$" "$IM_WORK/v2" ||
  fail "verify --platforms: no SAME row naming the filtered digest"
grep -Eq "^SAME +$SRC_ADDR/ns/single:1 " "$IM_WORK/v2" || fail "verify --platforms: the single-platform image"
verify --platforms linux/amd64,linux/arm64 --output json >"$IM_WORK/v2.json" 2>/dev/null
assert_eq "$(jq -r --arg s "$SRC_ADDR/ns/multi:1" '.images[] | select(.source == $s) | [.status, .source_digest, .filtered_digest, .destination_digest] | join(" ")' "$IM_WORK/v2.json")" \
  "same $src $dst $dst" "verify --platforms --output json: the source, filtered and destination digests"
rc=0
verify --platforms linux/amd64 >"$IM_WORK/v3" 2>&1 || rc=$?
assert_eq "$rc" 1 "verify with other --platforms: exit 1"
grep -Eq "^DIFFERENT +$SRC_ADDR/ns/multi:1 " "$IM_WORK/v3" || fail "verify with other --platforms: no DIFFERENT row"

rc=0
run --platforms linux/amd64,linux/arm64,linux/s390x >"$IM_WORK/out3" 2>&1 || rc=$?
assert_eq "$rc" 0 "selecting every platform keeps the index byte for byte"
grep -q FILTERED "$IM_WORK/out3" && fail "an unfiltered selection wrote a filtered index"
echo "{\"$SRC_ADDR/ns/multi:1\": \"$DST_ADDR/ns/whole\"}" >"$IM_WORK/images.json"
run --platforms linux/amd64,linux/arm64,linux/s390x >/dev/null 2>&1
assert_eq "$(raw_digest "$DST_ADDR/ns/whole:1")" "$src" "digest preserved when nothing is filtered out"
echo "test_platforms: all checks passed"

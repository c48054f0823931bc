#!/usr/bin/env bash
# Seeing before doing, and after: --dry-run reports what would move (blobs, bytes) and writes
# nothing anywhere; --report writes one JSON entry per image; progress lines appear when stderr is not
# a terminal; `verify` shows source and destination digests side by side and exits 1 on any
# difference or missing image. A destination tag holding another image is replaced and named, or
# kept with --no-overwrite; a layer deleted at the destination is found by `verify --deep` and
# copied again by --force.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
make_layout "$L" a --layers 2 --layer-size 100000 --shared-base "$IM_WORK/base.tar.gz" --seed a >/dev/null
make_layout "$L" b --layers 2 --layer-size 100000 --shared-base "$IM_WORK/base.tar.gz" --seed b >/dev/null
seed "$L" a "$SRC_ADDR/ns/a:1"
seed "$L" b "$SRC_ADDR/ns/b:1"
cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
cat >"$IM_WORK/images.json" <<JSON
{"$SRC_ADDR/ns/a:1": "$DST_ADDR/ns/a", "$SRC_ADDR/ns/b:1": "$DST_ADDR/ns/b"}
JSON
cd "$IM_WORK"
size_of() { raw_manifest "$SRC_ADDR/$1" | jq '[.config.size] + [.layers[].size] | add'; }
total_a=$(size_of ns/a:1)
total_b=$(size_of ns/b:1)
base=$(stat -c %s "$IM_WORK/base.tar.gz")

puts_before=$(grep -c '"\(PUT\|POST\|PATCH\) ' "$DST_LOG" || true)
rc=0
im_run "$IM_BIN" --auth auth.json --images images.json --dry-run --report plan.json >dry.out 2>&1 || rc=$?
cat dry.out
assert_eq "$rc" 0 "dry run exits 0"
assert_eq "$(grep -c '"\(PUT\|POST\|PATCH\) ' "$DST_LOG" || true)" "$puts_before" "dry run wrote nothing to the destination"
[ ! -e image-migrator.log ] || fail "dry run wrote the default log file"
assert_eq "$(jq -r '[.images[].status] | unique | join(",")' plan.json)" planned "report: both images planned"
# The shared base layer is counted once across the two images.
assert_eq "$(jq '.totals.bytes' plan.json)" "$((total_a + total_b - base))" "dry run counts every byte once ($((total_a + total_b - base)))"
grep -q "dry run: would copy $((total_a + total_b - base)) bytes; nothing was written" dry.out || fail "no dry-run total line"

rc=0
im_run "$IM_BIN" --auth auth.json --images images.json --report report.json --progress-interval 1 --log "" >run.out 2>&1 || rc=$?
assert_eq "$rc" 0 "copy exits 0"
assert_eq "$(jq -r '[.images[].status] | unique | join(",")' report.json)" copied "report: both copied"
assert_eq "$(jq -r '.images[] | select(.destination | endswith("ns/a:1")) | .digest' report.json)" "$(raw_digest "$SRC_ADDR/ns/a:1")" "report: digest"
assert_eq "$(jq -r '.images[0] | has("seconds") and has("bytes") and has("error")' report.json)" true "report: seconds, bytes, error fields"
grep -q "progress: 2/2 images (0 failed)" run.out || fail "no final progress line"
pass "a final progress line ends the log"

# A second copy run with a longer task list shows progress lines (not a terminal here).
for i in 1 2 3 4 5 6; do make_layout "$L" "p$i" --layers 1 --layer-size 8000000 --seed "p$i" >/dev/null; seed "$L" "p$i" "$SRC_ADDR/ns/p:$i"; done
echo "{\"$SRC_ADDR/ns/p\": \"$DST_ADDR/ns/p\"}" >p.json
im_run "$IM_BIN" --auth auth.json --images p.json -w 1 --progress-interval 1 --log "" >p.out 2>&1 || fail "progress run failed"
grep -E -q "progress: 6/6 images \(0 failed\), 48\.[0-9]/48\.[0-9] MB, [0-9.]+ MB/s, ETA 0s" p.out || fail "progress line: $(grep progress: p.out)"
pass "progress: $(grep -c progress: p.out) line(s), the last one complete"

rc=0
im_run "$IM_BIN" verify --auth auth.json --images images.json >verify.out 2>&1 || rc=$?
cat verify.out
assert_eq "$rc" 0 "verify: all same, exit 0"
assert_eq "$(grep -c '^SAME ' verify.out)" 2 "verify: 2 SAME rows"
# Make the destination differ: tag ns/b:1 at the destination with image a's manifest.
raw_manifest "$DST_ADDR/ns/a:1" >a.manifest
curl -s -o /dev/null -X PUT -H "Content-Type: $(jq -r .mediaType a.manifest)" --data-binary @a.manifest \
  "http://$DST_ADDR/v2/ns/a/manifests/other"
cat >verify2.json <<JSON
{"$SRC_ADDR/ns/b:1": "$DST_ADDR/ns/a:other", "$SRC_ADDR/ns/a:1": "$DST_ADDR/ns/missing"}
JSON
rc=0
im_run "$IM_BIN" verify --auth auth.json --images verify2.json >verify2.out 2>&1 || rc=$?
cat verify2.out
assert_eq "$rc" 1 "verify: exit 1 on a difference"
short() { printf '%s' "${1:0:19}"; } # sha256: and 12 hex digits, as the table shows them
grep -Eq "^DIFFERENT +$SRC_ADDR/ns/b:1 +$DST_ADDR/ns/a:other +$(short "$(raw_digest "$SRC_ADDR/ns/b:1")") +$(short "$(raw_digest "$DST_ADDR/ns/a:1")")$" verify2.out ||
  fail "DIFFERENT row missing"
grep -Eq "^MISSING +$SRC_ADDR/ns/a:1 +$DST_ADDR/ns/missing:1 +sha256:[0-9a-f]{12} +-$" verify2.out || fail "MISSING row missing"
grep -q "verified 2 image(s): 0 same, 1 different, 1 missing, 0 errors" verify2.out || fail "verify summary"
# The same for scripts, with full digests: --output json (stdout is JSON alone).
rc=0
im_run "$IM_BIN" verify --output json --auth auth.json --images verify2.json >verify2.json.out 2>verify2.err || rc=$?
assert_eq "$rc" 1 "verify --output json: exit 1 on a difference"
assert_eq "$(jq -r --arg s "$SRC_ADDR/ns/b:1" '.images[] | select(.source == $s) | [.status, .source_digest, .destination, .destination_digest] | join(" ")' verify2.json.out)" \
  "different $(raw_digest "$SRC_ADDR/ns/b:1") $DST_ADDR/ns/a:other $(raw_digest "$DST_ADDR/ns/a:1")" "verify --output json: the DIFFERENT image, full digests"
assert_eq "$(jq -r --arg s "$SRC_ADDR/ns/a:1" '.images[] | select(.source == $s) | [.status, (.destination_digest | tostring)] | join(" ")' verify2.json.out)" \
  "missing null" "verify --output json: the MISSING image has no destination digest"
assert_eq "$(jq -cS .summary verify2.json.out)" '{"different":1,"errors":0,"images":2,"incomplete":0,"missing":1,"rules_failed":0,"same":0}' \
  "verify --output json: summary"

# A destination tag that holds another image: --no-overwrite leaves it (KEPT); a plan says what it
# would replace; a copy replaces it and says which digest it replaced.
digest_a=$(raw_digest "$DST_ADDR/ns/a:1")
digest_b=$(raw_digest "$SRC_ADDR/ns/b:1")
echo "{\"$SRC_ADDR/ns/b:1\": \"$DST_ADDR/ns/a:other\"}" >over.json
rc=0
im_run "$IM_BIN" --auth auth.json --images over.json --no-overwrite --report kept.json --log "" >kept.out 2>&1 || rc=$?
cat kept.out
assert_eq "$rc" 0 "--no-overwrite: exit 0"
grep -q "KEPT $SRC_ADDR/ns/b:1 -> $DST_ADDR/ns/a:other: the destination tag holds $digest_a, not the source's $digest_b" kept.out ||
  fail "--no-overwrite: no KEPT line"
assert_eq "$(jq -r '.images[0].status + " " + .images[0].replaced' kept.json)" "kept $digest_a" "--no-overwrite: report"
assert_eq "$(raw_digest "$DST_ADDR/ns/a:other")" "$digest_a" "--no-overwrite: the destination tag is unchanged"
rc=0
im_run "$IM_BIN" --auth auth.json --images over.json --dry-run >over-plan.out 2>&1 || rc=$?
assert_eq "$rc" 0 "plan over another image: exit 0"
grep -q "PLAN $SRC_ADDR/ns/b:1 -> $DST_ADDR/ns/a:other $digest_b would copy .*; would replace $digest_a$" over-plan.out ||
  fail "plan over another image: no 'would replace' ($(grep PLAN over-plan.out))"
pass "plan over another image: says it would replace $digest_a"
rc=0
im_run "$IM_BIN" --auth auth.json --images over.json --report over.json.report --log "" >over.out 2>&1 || rc=$?
assert_eq "$rc" 0 "copy over another image: exit 0"
grep -q "OK $SRC_ADDR/ns/b:1 -> $DST_ADDR/ns/a:other $digest_b .* replaced=$digest_a$" over.out ||
  fail "copy over another image: the OK line does not name the replaced digest ($(grep OK over.out))"
assert_eq "$(jq -r '.images[0].status + " " + .images[0].replaced' over.json.report)" "copied $digest_a" "copy over another image: report"
assert_eq "$(raw_digest "$DST_ADDR/ns/a:other")" "$digest_b" "copy over another image: the tag now holds the source's image"

# A damaged destination: one layer of ns/a:1 deleted there. The manifest still matches, so a plain
# re-run skips it; --force checks every blob and copies the missing one again.
layer=$(raw_manifest "$DST_ADDR/ns/a:1" | jq -r '.layers[-1].digest')
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://$DST_ADDR/v2/ns/a/blobs/$layer")" 202 "damage: layer deleted at the destination"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -I "http://$DST_ADDR/v2/ns/a/blobs/$layer")" 404 "damage: the layer is gone"
im_run "$IM_BIN" --auth auth.json --images images.json --log "" >damaged.out 2>&1 || fail "re-run over the damage failed"
grep -q "OK $SRC_ADDR/ns/a:1 -> $DST_ADDR/ns/a:1 .* already present, skipped" damaged.out || fail "re-run: ns/a:1 not skipped"
rc=0
im_run "$IM_BIN" verify --auth auth.json --images images.json >shallow.out 2>&1 || rc=$?
assert_eq "$rc" 0 "verify over the damage: digests alone still match"
rc=0
im_run "$IM_BIN" verify --deep --auth auth.json --images images.json >deep.out 2>&1 || rc=$?
cat deep.out
assert_eq "$rc" 1 "verify --deep over the damage: exit 1"
grep -Eq "^INCOMPLETE +$SRC_ADDR/ns/a:1 " deep.out || fail "verify --deep: no INCOMPLETE row for ns/a:1"
grep -Eq "^SAME +$SRC_ADDR/ns/b:1 " deep.out || fail "verify --deep: no SAME row for ns/b:1"
grep -q "lacks 1 part(s) of the image, e.g. $layer" deep.out || fail "verify --deep: the missing layer is not named"
grep -q "1 same, 0 different, 0 missing, 0 errors, 0 rules failed, 1 incomplete" deep.out || fail "verify --deep: summary"
rc=0
im_run "$IM_BIN" --auth auth.json --images images.json --force --report forced.json --log "" >forced.out 2>&1 || rc=$?
cat forced.out
assert_eq "$rc" 0 "--force: exit 0"
assert_eq "$(jq -r '.images[] | select(.destination | endswith("ns/a:1")) | "\(.status) \(.blobs.copied)"' forced.json)" "copied 1" \
  "--force: ns/a:1 went through, its one missing layer copied"
assert_eq "$(jq -r '.images[] | select(.destination | endswith("ns/b:1")) | "\(.status) \(.blobs.copied)"' forced.json)" "copied 0" \
  "--force: ns/b:1 went through, nothing missing"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -I "http://$DST_ADDR/v2/ns/a/blobs/$layer")" 200 "--force: the layer is back"
pull_all_platforms "$DST_ADDR/ns/a:1"
pass "--force: ns/a:1 pulls back whole, every blob verified by skopeo"
rc=0
im_run "$IM_BIN" verify --deep --auth auth.json --images images.json >deep2.out 2>&1 || rc=$?
assert_eq "$rc" 0 "verify --deep after --force: exit 0"
grep -q "2 same, 0 different, 0 missing, 0 errors, 0 rules failed, 0 incomplete" deep2.out || fail "verify --deep after --force: summary"
echo "test_plan_verify: all checks passed"

#!/usr/bin/env bash
# Pass 1 hands the images that need copying to the workers in the feed's order, but holds none more
# than a second behind an earlier image whose HEAD is slow to come: one slow registry (here: one
# repository's manifest HEADs, delayed 4 s by tests/faultproxy/fault_proxy) must not hold up the
# images of the others until it answers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
start_proxy srcp "$SRC_ADDR"
L=$IM_WORK/layout
make_layout "$L" one --layers 1 --layer-size 20000 --seed slow-one >/dev/null
make_layout "$L" two --layers 1 --layer-size 20000 --seed fast-two >/dev/null
seed "$L" one "$SRC_ADDR/ns/a-slow:v1"
for t in v1 v2 v3; do seed "$L" two "$SRC_ADDR/ns/b-fast:$t"; done
set_rules "$SRCP_RULES" "HEAD ^/v2/ns/a-slow/manifests/ delay=4 count=inf"

cd "$IM_WORK"
echo "{\"$SRCP_ADDR\": {\"insecure\": true}, \"$DST_ADDR\": {\"insecure\": true}}" >auth.json
# Rules in key order: a-slow:v1 is the feed's first image, b-fast's three tags come after it.
cat >images.json <<JSON
{"$SRCP_ADDR/ns/a-slow:v1": "$DST_ADDR/ns/a-slow:v1", "$SRCP_ADDR/ns/b-fast": "$DST_ADDR/ns/b-fast"}
JSON
rc=0
im_run "$IM_BIN" --auth auth.json --images images.json -w 1 -r 0 --log "" >run.out 2>&1 || rc=$?
cat run.out
assert_eq "$rc" 0 "the run succeeds"
grep -qE ' HEAD /v2/ns/a-slow/manifests/[^ ]+ [0-9]+ delay=4' "$SRCP_PLOG" || fail "the slow HEAD was not delayed"
slow=$(grep -n "OK $SRCP_ADDR/ns/a-slow:v1 " run.out | cut -d: -f1)
first_fast=$(grep -n "OK $SRCP_ADDR/ns/b-fast:" run.out | head -n 1 | cut -d: -f1)
[ -n "$slow" ] && [ -n "$first_fast" ] || fail "an image was not copied"
[ "$first_fast" -lt "$slow" ] || fail "the fast repository's images waited for the slow HEAD (lines $first_fast, $slow)"
pass "the fast repository's images did not wait for the slow image's HEAD"
assert_eq "$(grep -c "OK $SRCP_ADDR/ns/b-fast:" run.out)" 3 "the three fast images copied"
for ref in a-slow:v1 b-fast:v1 b-fast:v2 b-fast:v3; do
  assert_eq "$(raw_digest "$DST_ADDR/ns/$ref")" "$(raw_digest "$SRC_ADDR/ns/$ref")" "digest preserved: ns/$ref"
done
echo "test_slow_head: all checks passed"

#!/usr/bin/env bash
# Adaptive concurrency per registry: a destination that answers 429 to every request above 4 in
# flight (fault_proxy --busy-above 4). With a fixed 16 at once ("adaptive": false) it sheds a
# stream of requests; adapting (the default), the run narrows to what the registry takes, copies
# every image, and gets fewer 429s. On a registry that never complains nothing is held back.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
start_proxy busy "$DST_ADDR" --busy-above 4
L=$IM_WORK/layout
: >"$IM_WORK/tags"
for i in $(seq 1 12); do
  make_layout "$L" "t$i" --layers 3 --layer-size 20000 --seed "a$i" >/dev/null
  seed "$L" "t$i" "$SRC_ADDR/ns/app:t$i"
  echo "t$i" >>"$IM_WORK/tags"
done
pass "seeded 12 images of 4 blobs each"

busy() { grep -c ' busy-above$' "$BUSY_PLOG" || true; }
run_into() { # NAME REPO AUTH_EXTRA: copies ns/app (every tag) to REPO behind the busy proxy
  cat >"$IM_WORK/auth-$1.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$BUSY_ADDR": {"insecure": true, $3}}
JSON
  echo "{\"$SRC_ADDR/ns/app\": \"$BUSY_ADDR/$2\"}" >"$IM_WORK/images-$1.json"
  run_im "$1" --auth "$IM_WORK/auth-$1.json" --images "$IM_WORK/images-$1.json" -w 16 -r 6 --digest-cache "" \
    --blob-cache "" --report "$IM_WORK/report-$1.json"
}

run_into fixed fixed/app '"maxConcurrency": 16, "adaptive": false'
fixed_rc=$rc fixed_429=$(busy)
im_log "fixed 16: exit $fixed_rc, $fixed_429 answers 429, $(jq .totals.failed "$IM_WORK/report-fixed.json") failed image(s)"
[ "$fixed_429" -gt 0 ] || fail "the fixed run never went above 4 at once: the test shows nothing"

run_into adaptive adaptive/app '"maxConcurrency": 16'
adaptive_429=$(($(busy) - fixed_429))
im_log "adaptive: exit $rc, $adaptive_429 answers 429"
[ "$rc" == 0 ] || { tail -n 20 "$IM_WORK/adaptive.out"; fail "the adaptive run failed (exit $rc)"; }
assert_eq "$(jq .totals.failed "$IM_WORK/report-adaptive.json")" 0 "no failed image adapting"
while read -r t; do
  same_digest "$SRC_ADDR/ns/app:$t" "$DST_ADDR/adaptive/app:$t" "adaptive/app:$t copied with its digest" >/dev/null
done <"$IM_WORK/tags"
pass "all 12 images copied with their digests"
[ "$adaptive_429" -lt "$fixed_429" ] || fail "adapting got $adaptive_429 answers 429, the fixed 16 got $fixed_429"
pass "adapting: $adaptive_429 answers 429 against $fixed_429 at a fixed 16"

# Unthrottled: the windows never narrow, so as many requests are in flight as before.
start_proxy open "$DST_ADDR"
cat >"$IM_WORK/auth-open.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$OPEN_ADDR": {"insecure": true}}
JSON
echo "{\"$SRC_ADDR/ns/app\": \"$OPEN_ADDR/open/app\"}" >"$IM_WORK/images-open.json"
run_im open --auth "$IM_WORK/auth-open.json" --images "$IM_WORK/images-open.json" -w 16 -r 0 --digest-cache "" \
  --blob-cache "" -v
assert_eq "$rc" 0 "the unthrottled run"
grep -q 'is overloaded' "$IM_WORK/open.out" && fail "a registry that never complained was taken for overloaded"
most=$(cat "$OPEN_MAXFLIGHT")
[ "$most" -gt 4 ] || fail "only $most requests in flight at most on an unthrottled registry"
pass "unthrottled: up to $most requests in flight, no window narrowed"

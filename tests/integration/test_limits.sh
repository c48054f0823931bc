#!/usr/bin/env bash
# Per-registry caps for rate-limited registries: "maxConcurrency" (requests in flight at once) and
# "rps" (requests per second) in a registry's auth.json entry, and Docker Hub's ratelimit-remaining.
# A fault proxy in front of each registry counts the requests it handles at once and logs when each
# one arrived. A run without caps is the control: it shows the same workload does exceed them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
for i in 1 2 3 4 5 6; do
  make_layout "$L" "v$i" --layers 3 --layer-size 300000 --seed "lim$i" >/dev/null
  seed "$L" "v$i" "$SRC_ADDR/ns/app:v$i"
done
start_proxy capped "$DST_ADDR"
start_proxy open "$DST_ADDR"
start_proxy slow "$SRC_ADDR"
cd "$IM_WORK"
run() {
  local auth=$1 images=$2
  shift 2
  echo "$auth" >auth.json
  echo "$images" >images.json
  im_run "$IM_BIN" --auth auth.json --images images.json -r 0 --log "" "$@"
}

# 1. maxConcurrency 2 on the destination, 8 workers.
rc=0
run "{\"$SRC_ADDR\": {\"insecure\": true}, \"$CAPPED_ADDR\": {\"insecure\": true, \"maxConcurrency\": 2}}" \
  "{\"$SRC_ADDR/ns/app\": \"$CAPPED_ADDR/capped/app\"}" -w 8 >capped.out 2>&1 || rc=$?
cat capped.out
assert_eq "$rc" 0 "copied under maxConcurrency 2"
grep -q "$CAPPED_ADDR: at most 2 request(s) at once" capped.out || fail "the cap is not announced"
capped_max=$(cat "$CAPPED_MAXFLIGHT")
[ "$capped_max" -le 2 ] || fail "the destination saw $capped_max requests at once, above maxConcurrency 2"
pass "the destination never saw more than 2 requests at once (max $capped_max)"
for i in 1 6; do
  assert_eq "$(raw_digest "$DST_ADDR/capped/app:v$i")" "$(raw_digest "$SRC_ADDR/ns/app:v$i")" "v$i digest preserved"
done

# Control: the same copy without a cap goes above 2 (else the check above proves nothing).
rc=0
run "{\"$SRC_ADDR\": {\"insecure\": true}, \"$OPEN_ADDR\": {\"insecure\": true}}" \
  "{\"$SRC_ADDR/ns/app\": \"$OPEN_ADDR/open/app\"}" -w 8 >open.out 2>&1 || rc=$?
assert_eq "$rc" 0 "control copy without a cap"
open_max=$(cat "$OPEN_MAXFLIGHT")
[ "$open_max" -gt 2 ] || fail "control: without a cap the destination saw only $open_max requests at once"
pass "control: without a cap the destination saw $open_max requests at once"

# 2. rps 25 on the source: the requests' arrival times span at least (N-1)/25 s.
rc=0
run "{\"$SLOW_ADDR\": {\"insecure\": true, \"rps\": 25}, \"$DST_ADDR\": {\"insecure\": true}}" \
  "{\"$SLOW_ADDR/ns/app\": \"$DST_ADDR/rps/app\"}" -w 8 >rps.out 2>&1 || rc=$?
cat rps.out
assert_eq "$rc" 0 "copied under rps 25"
read -r n span < <(awk '{ t[NR] = $1 } END { printf "%d %.3f\n", NR, t[NR] - t[1] }' <(sort -n "$SLOW_PLOG"))
min=$(awk -v n="$n" 'BEGIN { printf "%.3f", (n - 1) / 25 * 0.95 }')
awk -v s="$span" -v m="$min" 'BEGIN { exit !(s >= m) }' || fail "$n requests arrived within $span s: faster than 25 per second"
pass "$n source requests spread over $span s (at 25/s they need at least $min s)"
# In every 1-second window at most 25 + 1 requests began.
burst=$(sort -n "$SLOW_PLOG" | awk '{ t[NR] = $1 } END { j = 1; m = 0; for (i = 1; i <= NR; i++) { while (t[i] - t[j] >= 1) j++; if (i - j + 1 > m) m = i - j + 1 } print m }')
[ "$burst" -le 26 ] || fail "$burst requests began within one second"
pass "at most $burst requests began within any one second"

# 3. Docker Hub's pull quota: a 429 with ratelimit-remaining 0 fails at once (no retry, no extra
# pass), says why, and the low quota is announced.
set_rules "$SLOW_RULES" "GET ^/v2/ns/app/manifests/ status=429 count=inf header=RateLimit-Remaining:0;w=21600"
rc=0
run "{\"$SLOW_ADDR\": {\"insecure\": true}, \"$DST_ADDR\": {\"insecure\": true}}" \
  "{\"$SLOW_ADDR/ns/app:v1\": \"$DST_ADDR/quota/app\"}" -r 3 >quota.out 2>&1 || rc=$?
cat quota.out
assert_eq "$rc" 1 "quota used up: the image fails"
grep -q "only 0 requests left in the registry's rate-limit window of 21600 s" quota.out || fail "the low quota is not announced"
grep -q "FAILED .*pull quota is used up (ratelimit-remaining: 0;w=21600)" quota.out || fail "no clear quota error"
assert_eq "$(grep -c 'retrying in' quota.out || true)" 0 "not retried inside the run"
assert_eq "$(grep -c 'pass 2' quota.out || true)" 0 "no second pass for a used-up quota"

# 3b. Ctrl-C while requests wait for their turn under a slow rps cap: the run stops at once, it does
# not wait for every reserved turn (at 0.5 per second those would take minutes).
set_rules "$SLOW_RULES"
echo "{\"$SLOW_ADDR\": {\"insecure\": true, \"rps\": 0.5}, \"$DST_ADDR\": {\"insecure\": true}}" >auth.json
echo "{\"$SLOW_ADDR/ns/app\": \"$DST_ADDR/interrupted/app\"}" >images.json
"$IM_BIN" --auth auth.json --images images.json -r 2 --log "" -w 8 --progress-interval 1 --report int.json >int.out 2>&1 &
pid=$!
sleep 2
t0=$(date +%s%N)
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
cat int.out
assert_eq "$rc" 130 "interrupted while waiting under rps 0.5: exit 130"
[ "$ms" -lt 10000 ] || fail "the run took $ms ms to stop after SIGINT"
pass "stopped $ms ms after SIGINT"
# The last progress line is true: every image counted, the failed ones as failed (as in --report),
# even with retries left (c4e1e45 ended on "0/N images (0 failed) ... ETA ?" after a stop).
last=$(grep 'progress: ' int.out | tail -1)
n=$(jq '.images | length' int.json)
f=$(jq '[.images[] | select(.status == "failed")] | length' int.json)
[ "$f" -ge 1 ] || fail "no image failed by the stop: $(jq -c '.totals' int.json)"
grep -q "progress: $n/$n images ($f failed)" <<<"$last" || fail "the last progress line after a stop: $last (report: $n images, $f failed)"
pass "the last progress line after a stop: $last"

# 3c. Ctrl-C under maxConcurrency 1 with slow requests: the requests waiting for the one slot give up
# instead of all going at once (the old limiter let every waiter in on the first signal: 2 and more in
# flight at a registry capped at 1, exactly when the user asked to stop).
start_proxy one "$SRC_ADDR"
set_rules "$ONE_RULES" "* ^/v2/ns/app/ delay=0.4 count=inf"
echo "{\"$ONE_ADDR\": {\"insecure\": true, \"maxConcurrency\": 1}, \"$DST_ADDR\": {\"insecure\": true}}" >auth.json
echo "{\"$ONE_ADDR/ns/app\": \"$DST_ADDR/one/app\"}" >images.json
"$IM_BIN" --auth auth.json --images images.json -r 0 --log "" -w 8 --digest-cache "" >one.out 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q '^[0-9]' "$ONE_PLOG" && break; sleep 0.05; done
sleep 1
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
cat one.out
assert_eq "$rc" 130 "interrupted under maxConcurrency 1: exit 130"
assert_eq "$(cat "$ONE_MAXFLIGHT")" 1 "the registry capped at 1 never had 2 requests in flight, before or after SIGINT"

# 4. Bad caps are configuration errors naming the key.
rc=0
run "{\"$SRC_ADDR\": {\"insecure\": true, \"maxConcurrency\": 0}}" "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/x/app\"}" >bad1.out 2>&1 || rc=$?
assert_eq "$rc" 2 "maxConcurrency 0: exit 2"
grep -q "auth.json: key \"$SRC_ADDR\".maxConcurrency: must be a whole number from 1 to 10000, not 0" bad1.out || { cat bad1.out; fail "unclear error"; }
rc=0
run "{\"$SRC_ADDR/ns\": {\"insecure\": true, \"rps\": 5}}" "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/x/app\"}" >bad2.out 2>&1 || rc=$?
assert_eq "$rc" 2 "rps on a namespace key: exit 2"
grep -q "a cap applies to a whole registry: set it on the key \"$SRC_ADDR\"" bad2.out || { cat bad2.out; fail "unclear error"; }
echo "limits: OK"

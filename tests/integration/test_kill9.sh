#!/usr/bin/env bash
# kill -9 in the middle of a run: nothing incomplete is visible under a tag, the next run completes
# the job, and it sends again only what was in flight when the process died (at most 10% of the
# bytes that had already reached the destination): committed blobs are never copied twice.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
n=40
rules="{"
for i in $(seq 1 $n); do
  make_layout "$L" "v$i" --layers 3 --layer-size 400000 --seed "k9-$i" >/dev/null
  rules+="\"$SRC_ADDR/ns/app$i:v$i\": \"$DST_ADDR/ns/app$i\","
done
# One skopeo process for all tags keeps seeding fast.
for i in $(seq 1 $n); do echo "$i"; done | xargs -P 4 -I{} bash -c "source '$IM_REPO_ROOT/tests/integration/lib.sh'; IM_WORK='$IM_WORK' seed '$L' v{} '$SRC_ADDR/ns/app{}:v{}'"
echo "${rules%,}}" >"$IM_WORK/images.json"
cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
declare -A blob_size
total=0
for i in $(seq 1 $n); do
  while read -r d s; do blob_size[$d]=$s; total=$((total + s)); done < <(raw_manifest "$SRC_ADDR/ns/app$i:v$i" | jq -r '.config, .layers[] | "\(.digest) \(.size)"')
done
pass "seeded $n images, $total bytes"

committed_bytes() {
  local sum=0 i d
  for i in $(seq 1 $n); do
    for d in $(raw_manifest "$SRC_ADDR/ns/app$i:v$i" | jq -r '.config.digest, .layers[].digest'); do
      [ "$(curl -s -o /dev/null -w '%{http_code}' -I "http://$DST_ADDR/v2/ns/app$i/blobs/$d")" = 200 ] && sum=$((sum + ${blob_size[$d]}))
    done
  done
  echo "$sum"
}

"$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "" >"$IM_WORK/run1" 2>&1 &
pid=$!
# Kill once about half of the images are done.
for _ in $(seq 1 400); do
  [ "$(grep -c ' OK ' "$IM_WORK/run1" || true)" -ge $((n / 2)) ] && break
  sleep 0.02
done
kill -9 $pid 2>/dev/null || fail "run 1 ended before it could be killed"
wait $pid 2>/dev/null || true
done1=$(grep -c ' OK ' "$IM_WORK/run1" || true)
[ "$done1" -lt "$n" ] || fail "run 1 completed everything before the kill"
pass "run 1 killed with SIGKILL after $done1 of $n images"

# Every tag visible at the destination is complete.
for i in $(seq 1 $n); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$DST_ADDR/v2/ns/app$i/manifests/v$i")
  if [ "$code" = 200 ]; then
    pull_all_platforms "$DST_ADDR/ns/app$i:v$i" || fail "app$i:v$i is visible but incomplete"
  fi
done
pass "every tag visible after the kill pulls back complete"

already=$(committed_bytes)
# Bytes of uploads cut by the kill: they sit in the destination's upload sessions and are lost.
partial=$(find "$DST_DIR/data" -path '*/_uploads/*/data' -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "" >"$IM_WORK/run2" 2>&1 || rc=$?
assert_eq "$rc" 0 "run 2 completes the job"
sent=$(grep -o "bytes=[0-9]*" "$IM_WORK/run2" | cut -d= -f2 | awk '{s += $1} END {print s + 0}')
needed=$((total - already))
[ "$sent" -ge "$needed" ] || fail "run 2 sent less than was missing: accounting is wrong"
again=$((sent - needed + partial))
echo "total $total, committed before the kill $already, cut uploads $partial, run 2 sent $sent (needed $needed): sent again $again"
[ $((again * 10)) -le "$already" ] || fail "run 2 sent again $again bytes, more than 10% of the $already already copied"
pass "run 2 sent again $again bytes ($((again * 1000 / (already > 0 ? already : 1)))‰ of the $already already copied; limit 100‰)"
skipped=$(grep -c 'already present, skipped' "$IM_WORK/run2" || true)
# (an image may complete between reading run 1's log and the kill: at least those logged are skipped)
[ "$skipped" -ge "$done1" ] || fail "only $skipped images skipped, $done1 had been copied"
pass "$skipped images finished before the kill are skipped with two HEADs"
for i in 1 $((n / 2)) $n; do
  assert_eq "$(raw_digest "$DST_ADDR/ns/app$i:v$i")" "$(raw_digest "$SRC_ADDR/ns/app$i:v$i")" "app$i:v$i digest preserved"
done
echo "test_kill9: all checks passed"

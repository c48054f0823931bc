#!/usr/bin/env bash
# SIGINT/SIGTERM: no new work after the first signal, the summary is still printed, the exit code
# says "interrupted" (128+signal), no half-copied image is visible under a tag, and --write-failed
# lists what was left undone, which a rerun of that list completes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
for i in 1 2 3 4 5 6; do
  make_layout "$L" "v$i" --layers 1 --layer-size 40000000 --seed "sig$i" >/dev/null
  seed "$L" "v$i" "$SRC_ADDR/ns/app:v$i"
done
cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
echo "{\"$SRC_ADDR/ns/app\": \"$DST_ADDR/ns/app\"}" >"$IM_WORK/images.json"

for sig in INT TERM; do
  "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" -w 1 --log "" \
    --write-failed "$IM_WORK/left-$sig.json" >"$IM_WORK/out-$sig" 2>&1 &
  pid=$!
  # Wait until the first image is under way, then interrupt.
  for _ in $(seq 1 100); do grep -q "image task(s)" "$IM_WORK/out-$sig" && break; sleep 0.05; done
  sleep 0.2
  kill -s "$sig" "$pid"
  rc=0
  wait "$pid" || rc=$?
  cat "$IM_WORK/out-$sig"
  expected=$([ "$sig" = INT ] && echo 130 || echo 143)
  assert_eq "$rc" "$expected" "SIG$sig: exit code $expected"
  grep -q "SIG$sig received" "$IM_WORK/out-$sig" || fail "SIG$sig: no notice printed"
  grep -q "Images(6) migration finished" "$IM_WORK/out-$sig" || fail "SIG$sig: no summary"
  copied=$(grep -c "^.* OK " "$IM_WORK/out-$sig" || true)
  [ "$copied" -lt 6 ] || fail "SIG$sig: all images copied, the signal stopped nothing"
  pass "SIG$sig: stopped after $copied of 6 images, summary printed"
  # --write-failed lists exactly the images the interruption left undone.
  assert_eq "$(jq 'length' "$IM_WORK/left-$sig.json")" "$((6 - copied))" "SIG$sig: the $((6 - copied)) images left undone are listed"
  for i in 1 2 3 4 5 6; do
    if grep -q "OK $SRC_ADDR/ns/app:v$i " "$IM_WORK/out-$sig"; then
      [ "$(jq --arg k "$SRC_ADDR/ns/app:v$i" 'has($k)' "$IM_WORK/left-$sig.json")" = false ] || fail "SIG$sig: v$i copied but listed"
    else
      assert_eq "$(jq -r --arg k "$SRC_ADDR/ns/app:v$i" '.[$k]' "$IM_WORK/left-$sig.json")" "$DST_ADDR/ns/app:v$i" "SIG$sig: v$i listed"
    fi
  done
  # Every tag that exists at the destination is complete: digest equal to the source.
  for i in 1 2 3 4 5 6; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://$DST_ADDR/v2/ns/app/manifests/v$i")
    if [ "$code" = 200 ]; then
      assert_eq "$(raw_digest "$DST_ADDR/ns/app:v$i")" "$(raw_digest "$SRC_ADDR/ns/app:v$i")" "SIG$sig: v$i complete at the destination"
    fi
  done
done

# Running the list the interruption left completes the job.
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/left-TERM.json" --log "" >"$IM_WORK/out-final" 2>&1 || rc=$?
assert_eq "$rc" 0 "the list left by SIGTERM completes the job"
for i in 1 2 3 4 5 6; do
  assert_eq "$(raw_digest "$DST_ADDR/ns/app:v$i")" "$(raw_digest "$SRC_ADDR/ns/app:v$i")" "v$i copied"
done
echo "test_signals: all checks passed"

#!/usr/bin/env bash
# Sharding for Indexed Jobs: 3 shards run in parallel against real registries; together they copy
# every image exactly once (union = all, no overlap), all tags of a repository in one shard;
# JOB_COMPLETION_INDEX + --shards gives the same split as --shard I/N; --log-format json writes one
# JSON object per line.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
make_layout "$L" a --layers 1 --layer-size 50000 --seed a >/dev/null
make_layout "$L" b --layers 1 --layer-size 50000 --seed b >/dev/null
rules="{"
for r in $(seq 1 12); do
  seed "$L" a "$SRC_ADDR/ns/repo$r:a"
  seed "$L" b "$SRC_ADDR/ns/repo$r:b"
  rules+="\"$SRC_ADDR/ns/repo$r\": \"$DST_ADDR/ns/repo$r\","
done
echo "${rules%,}}" >"$IM_WORK/images.json"
cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
pass "seeded 24 images in 12 repositories"

start=$(date +%s%N)
pids=()
for i in 0 1 2; do
  "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --shard "$i/3" --log-format json \
    --log "" >"$IM_WORK/shard$i.out" 2>&1 &
  pids+=($!)
done
for i in 0 1 2; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  assert_eq "$rc" 0 "shard $i/3 exits 0"
done
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))

for i in 0 1 2; do
  jq -e -c . "$IM_WORK/shard$i.out" >/dev/null || fail "shard $i: a log line is not JSON"
done
pass "--log-format json: every line of every shard is a JSON object"
jq -r 'select(.msg | startswith("OK ")) | .msg | split(" ")[1]' "$IM_WORK"/shard*.out | sort >"$IM_WORK/copied"
assert_eq "$(wc -l <"$IM_WORK/copied")" 24 "24 images copied in total"
assert_eq "$(sort -u "$IM_WORK/copied" | wc -l)" 24 "no image copied by two shards"
for i in 0 1 2; do
  n=$(jq -r 'select(.msg | startswith("OK ")) | .msg' "$IM_WORK/shard$i.out" | wc -l)
  [ "$n" -gt 0 ] || fail "shard $i got no work (split is degenerate)"
done
for r in $(seq 1 12); do
  owners=$(grep -l "OK $SRC_ADDR/ns/repo$r:" "$IM_WORK"/shard*.out | wc -l)
  assert_eq "$owners" 1 "repo$r: both tags in one shard"
done
for r in 1 6 12; do
  assert_eq "$(raw_digest "$DST_ADDR/ns/repo$r:b")" "$(raw_digest "$SRC_ADDR/ns/repo$r:b")" "repo$r:b digest preserved"
done
pass "3 shards in parallel took ${elapsed} ms (timing is reported, not asserted: see bench/)"

# JOB_COMPLETION_INDEX + --shards N picks the same rules as --shard I/N (dry comparison on the logs).
for i in 0 1 2; do
  JOB_COMPLETION_INDEX=$i "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --shards 3 \
    --log "" >"$IM_WORK/job$i.out" 2>&1
  a=$(grep -o "OK [^ ]*" "$IM_WORK/job$i.out" | sort)
  b=$(jq -r 'select(.msg | startswith("OK ")) | .msg | split(" ")[0:2] | join(" ")' "$IM_WORK/shard$i.out" | sort)
  assert_eq "$a" "$b" "JOB_COMPLETION_INDEX=$i --shards 3 == --shard $i/3"
done
rc=0
JOB_COMPLETION_INDEX=x "$IM_BIN" --images "$IM_WORK/images.json" --shards 3 --log "" 2>"$IM_WORK/err" || rc=$?
assert_eq "$rc" 2 "a bad JOB_COMPLETION_INDEX is a configuration error"
echo "test_shards: all checks passed"

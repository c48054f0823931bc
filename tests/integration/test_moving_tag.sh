#!/usr/bin/env bash
# A tag that moves while the run is busy with another image: the tag is resolved again when its
# image's turn comes (HEAD answers older than a few seconds are not trusted), so the destination
# gets the tag's current image, not a manifest the source has deleted meanwhile.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
make_layout "$L" t1 --layers 1 --layer-size 9000000 >/dev/null # slow under --limit-rate 1M: 7 s or more
make_layout "$L" t2 --layers 1 --layer-size 20000 >/dev/null
make_layout "$L" t2new --layers 1 --layer-size 30000 >/dev/null
seed "$L" t1 "$SRC_ADDR/ns/app:t1"
seed "$L" t2 "$SRC_ADDR/ns/app:t2"
old=$(raw_digest "$SRC_ADDR/ns/app:t2")
cd "$IM_WORK"
echo "{\"$SRC_ADDR\": {\"insecure\": true}, \"$DST_ADDR\": {\"insecure\": true}}" >auth.json
echo "{\"$SRC_ADDR/ns/app\": \"$DST_ADDR/ns/app\"}" >images.json

# One worker: t1 first (tags in order), t2's HEADs answered at the start, its copy 7 s or more later.
"$IM_BIN" --auth auth.json --images images.json -w 1 -r 0 --limit-rate 1M --log "" -v >run.out 2>&1 &
pid=$!
_im_track "$pid"
sleep 2
seed "$L" t2new "$SRC_ADDR/ns/app:t2" # t2 moves...
new=$(raw_digest "$SRC_ADDR/ns/app:t2")
curl -sf -X DELETE "http://$SRC_ADDR/v2/ns/app/manifests/$old" # ...and its old image is deleted
rc=0
wait "$pid" || rc=$?
_im_untrack "$pid"
cat run.out
assert_eq "$([ "$old" != "$new" ] && echo moved)" moved "t2 points to another image at the source"
assert_eq "$(grep -c 'OK .*ns/app:t1' run.out)" 1 "t1 copied"
assert_eq "$rc" 0 "the run succeeds"
assert_eq "$(raw_digest "$DST_ADDR/ns/app:t2")" "$new" "the destination has t2's current image"

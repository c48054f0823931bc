#!/usr/bin/env bash
# Blob locations kept between runs (--blob-cache): a new destination repository whose layers an
# earlier run put into another repository of that registry gets them by a cross-repository mount;
# without the memory they are copied again; a stale memory (the repository lost the blob) costs a
# refused mount, then the bytes are copied and the image is whole.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
for s in 1 2 3 4; do
  make_layout "$L" "img$s" --layers 2 --layer-size 200000 --shared-base "$IM_WORK/base.tar.gz" --seed "m$s" >/dev/null
  seed "$L" "img$s" "$SRC_ADDR/ns/app$s:1"
done
base_hex=$(sha256sum "$IM_WORK/base.tar.gz" | cut -d' ' -f1)
pass "seeded 4 images sharing one base layer"

cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
MEM=$IM_WORK/cache/blob-locations
mkdir -p "$IM_WORK/cache"
copy() { # N DST_REPO [image-migrator options...]: copies ns/appN:1 to DST_REPO:1 with a report
  local n=$1 repo=$2
  shift 2
  echo "{\"$SRC_ADDR/ns/app$n:1\": \"$DST_ADDR/$repo:1\"}" >"$IM_WORK/images.json"
  run_im "copy-${repo//\//-}" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" -r 0 \
    --report "$IM_WORK/report-${repo//\//-}.json" "$@"
  [ "$rc" == 0 ] || { cat "$IM_WORK/copy-${repo//\//-}.out"; fail "copy of app$n to $repo failed (exit $rc)"; }
  same_digest "$SRC_ADDR/ns/app$n:1" "$DST_ADDR/$repo:1" "app$n copied to $repo with its digest"
}
blobs_of() { jq -r ".images[0].blobs.$2" "$IM_WORK/report-${1//\//-}.json"; }
base_puts() { grep -c "\"PUT /v2/$1/blobs/uploads/[^\"]*digest=sha256%3A$base_hex" "$DST_LOG" || true; }

# Run 1 puts the base into team/a and says so in the memory.
copy 1 team/a --blob-cache "$MEM"
assert_eq "$(base_puts team/a)" 1 "run 1 uploaded the base into team/a"
grep -q "^$DST_ADDR/sha256:$base_hex team/a [0-9]*$" "$MEM" || { cat "$MEM"; fail "the memory does not place the base in team/a"; }
assert_eq "$(stat -c %a "$MEM")" 600 "the memory is private to its user (0600)"
pass "run 1 remembered where the base is"

# Run 2, another process, a new repository: the base is mounted from team/a, not uploaded.
copy 2 team/b --blob-cache "$MEM"
assert_eq "$(base_puts team/b)" 0 "run 2 did not upload the base again"
grep -q "\"POST /v2/team/b/blobs/uploads/?[^\"]*mount=sha256%3A$base_hex[^\"]*from=team%2Fa[^\"]*\" 201" "$DST_LOG" ||
  fail "run 2 did not mount the base from team/a"
assert_eq "$(blobs_of team/b mounted)" 1 "the report counts the mount"
assert_eq "$(blobs_of team/b copied)" 2 "the config and its own layer copied"
pull_all_platforms "$DST_ADDR/team/b:1"
pass "team/b pulls back whole with verified blobs"

# Without the memory (what every run did before it): the base travels again.
copy 3 team/nomem --blob-cache ""
assert_eq "$(base_puts team/nomem)" 1 "without the memory the base is uploaded again"
assert_eq "$(blobs_of team/nomem mounted)" 0 "and nothing is mounted"

# A stale memory: the repository it names (team/b, the latest) no longer links the base.
grep -q "^$DST_ADDR/sha256:$base_hex team/b " "$MEM" || { cat "$MEM"; fail "the memory does not name team/b, the latest"; }
rm -rf "$IM_WORK/dst/data/docker/registry/v2/repositories/team/b/_layers/sha256/$base_hex"
restart_registry dst
copy 4 team/c --blob-cache "$MEM"
grep -q "\"POST /v2/team/c/blobs/uploads/?[^\"]*mount=sha256%3A$base_hex[^\"]*from=team%2Fb[^\"]*\" 202" "$DST_LOG" ||
  fail "run 4 did not try (and get refused) the mount from team/b"
assert_eq "$(base_puts team/c)" 1 "the refused mount fell back to an upload"
assert_eq "$(blobs_of team/c copied)" 3 "config, base and its own layer copied"
pull_all_platforms "$DST_ADDR/team/c:1"
pass "team/c pulls back whole with verified blobs"
grep -q "^$DST_ADDR/sha256:$base_hex team/c " "$MEM" || { cat "$MEM"; fail "the memory was not corrected to team/c"; }
pass "the memory now names where the base is"

# A dry run reads the memory but does not write it; its plan counts the remembered base as a mount.
before=$(sha256sum "$MEM")
echo "{\"$SRC_ADDR/ns/app1:1\": \"$DST_ADDR/team/d:1\"}" >"$IM_WORK/images.json"
run_im dry --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --dry-run --blob-cache "$MEM"
assert_eq "$rc" 0 "dry run"
assert_eq "$(sha256sum "$MEM")" "$before" "a dry run leaves the memory as it was"
run_im dry-nomem --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --dry-run --blob-cache ""
planned() { sed -n 's/.*dry run: would copy \([0-9]*\) bytes.*/\1/p' "$IM_WORK/$1.out"; }
# app1's blobs all sit in team/a, where run 1 put them: nothing would travel.
assert_eq "$(planned dry)" 0 "the dry run's plan counts the blobs it would mount from the memory as mounts"
[ "$(planned dry-nomem)" -gt 400000 ] || fail "without the memory the plan copies app1's blobs (planned $(planned dry-nomem))"

# Files given by mistake: never overwritten, one line, exit 2.
echo '{"keep": "me"}' >"$IM_WORK/other.json"
for args in "--blob-cache $IM_WORK/other.json" "--digest-cache $IM_WORK/other.json" \
  "--blob-cache $IM_WORK/c1 --digest-cache $IM_WORK/c1" "--blob-cache $IM_WORK/images.json" \
  "--report $IM_WORK/r.json --write-failed $IM_WORK/r.json"; do
  # shellcheck disable=SC2086 # the arguments are split on purpose
  run_im mistake --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" $args
  assert_eq "$rc" 2 "$args: exit 2"
  assert_eq "$(grep -c . "$IM_WORK/mistake.out")" 1 "$args: one line ($(head -c 200 "$IM_WORK/mistake.out"))"
done
assert_eq "$(cat "$IM_WORK/other.json")" '{"keep": "me"}' "a file that is not a cache is left as it was"
grep -q "$DST_ADDR/team/d" "$IM_WORK/images.json" || fail "the images file was overwritten"
pass "foreign files and one file for two flags are refused"

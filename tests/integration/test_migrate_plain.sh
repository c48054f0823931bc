#!/usr/bin/env bash
# The core promise against real registries (plain HTTP): single-arch OCI, Docker v2s2, a multi-arch
# index and images sharing a layer are copied with identical digests; the eight rules through the
# CLI; tag pagination; a shared layer crosses the wire once; a second run moves no blob at all.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
make_layout "$L" single --layers 3 --layer-size 300000 --seed single >/dev/null
make_layout "$L" multi --layers 2 --layer-size 150000 --platforms linux/amd64,linux/arm64 --seed multi >/dev/null
make_layout "$L" shared1 --layers 2 --layer-size 100000 --shared-base "$IM_WORK/base.tar.gz" --seed s1 >/dev/null
make_layout "$L" shared2 --layers 2 --layer-size 100000 --shared-base "$IM_WORK/base.tar.gz" --seed s2 >/dev/null
seed "$L" single "$SRC_ADDR/ns/app:1.0"
seed "$L" single "$SRC_ADDR/ns/app:1.1"
seed "$L" multi "$SRC_ADDR/ns/multi:v1"
seed "$L" single "$SRC_ADDR/ns/docker:v2s2" --format v2s2
seed "$L" shared1 "$SRC_ADDR/ns/shared-a:1"
seed "$L" shared2 "$SRC_ADDR/ns/shared-b:1"
for t in t1 t2 t3 t4 t5; do seed "$L" "$([ "$t" == t2 ] && echo shared2 || echo shared1)" "$SRC_ADDR/ns/paged:$t"; done
app_digest=$(raw_digest "$SRC_ADDR/ns/app:1.0")
pass "seeded 11 tags in 6 repositories"

cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
cat >"$IM_WORK/images.json" <<JSON
{
  "$SRC_ADDR/ns/app": "$DST_ADDR/team/app",
  "$SRC_ADDR/ns/multi:v1": "$DST_ADDR/team/multi",
  "$SRC_ADDR/ns/docker:v2s2": "$DST_ADDR/team/renamed:stable",
  "$SRC_ADDR/ns/shared-a:1": "",
  "$SRC_ADDR/ns/shared-b:1": ["$DST_ADDR/team/shared-b", "$DST_ADDR/other/shared-b"],
  "$SRC_ADDR/ns/paged": "$DST_ADDR/team/paged",
  "$SRC_ADDR/ns/app@$app_digest": "$DST_ADDR/team/bydigest",
  "$SRC_ADDR/ns/*": "$DST_ADDR/x/y",
  "$SRC_ADDR/app:1": "$DST_ADDR/x/y"
}
JSON

rc=0
IMAGE_MIGRATOR_TAG_PAGE_SIZE=2 im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" \
  --registry "$DST_ADDR" --namespace def --workers 4 --retries 1 --log "$IM_WORK/run.log" \
  >"$IM_WORK/out1" 2>&1 || rc=$?
cat "$IM_WORK/out1"
assert_eq "$rc" 1 "exit code 1 when rules failed to generate"
assert_eq "$(tail -n1 "$IM_WORK/out1" | sed 's/^.*info  //')" \
  "Images(13) migration finished, 0 images tasks failed, 2 tasks generate failed" "final summary line"
grep -q "rule \"$SRC_ADDR/ns/\*\".*rule 1" "$IM_WORK/out1" || fail "rule 1 violation not reported by key"
grep -q "rule \"$SRC_ADDR/app:1\".*rule 3" "$IM_WORK/out1" || fail "rule 3 violation not reported by key"
pass "broken rules reported by key, the others ran"
grep -q "Images(13) migration finished" "$IM_WORK/run.log" || fail "log file misses the summary"
pass "log file written"

check() { # SRC DST: digests equal and every platform pulls back
  local s d
  s=$(raw_digest "$SRC_ADDR/$1")
  d=$(raw_digest "$DST_ADDR/$2")
  assert_eq "$d" "$s" "digest preserved: $1 -> $2"
}
check ns/app:1.0 team/app:1.0                  # rule 6: every tag
check ns/app:1.1 team/app:1.1
check ns/multi:v1 team/multi:v1                # rule 7: destination takes the source tag
check ns/docker:v2s2 team/renamed:stable       # rule 5: renamed, Docker schema 2 kept
check ns/shared-a:1 def/shared-a:1             # rule 8: default registry/namespace
check ns/shared-b:1 team/shared-b:1            # rule 4: one source, two destinations
check ns/shared-b:1 other/shared-b:1
for t in t1 t2 t3 t4 t5; do check "ns/paged:$t" "team/paged:$t"; done   # tags listed over 3 pages
check "ns/app@$app_digest" "team/bydigest@$app_digest"                   # pushed by digest
grep -q "warning .*team/bydigest@$app_digest is pushed by digest only, without a tag: .*give the destination a tag (\"$DST_ADDR/team/bydigest:TAG\")" \
  "$IM_WORK/out1" || fail "no warning for the rule whose image lands untagged"
assert_eq "$(grep -c 'is pushed by digest only' "$IM_WORK/out1")" 1 "... said once, for that rule only"
assert_eq "$(raw_manifest "$DST_ADDR/team/renamed:stable" | jq -r .mediaType)" \
  application/vnd.docker.distribution.manifest.v2+json "Docker v2s2 media type kept"
assert_eq "$(raw_manifest "$DST_ADDR/team/multi:v1" | jq '.manifests | length')" 2 "both platforms in the index"
for ref in team/multi:v1 team/app:1.0 team/renamed:stable def/shared-a:1; do
  pull_all_platforms "$DST_ADDR/$ref"
  pass "every platform of $ref pulls back with verified blobs"
done

# The layer shared by shared-a, shared-b and paged crossed the wire once; other repositories mounted it.
base_hex=$(sha256sum "$IM_WORK/base.tar.gz" | cut -d' ' -f1)
puts=$(grep -c "\"PUT /v2/[^\"]*digest=sha256%3A$base_hex" "$DST_LOG" || true)
assert_eq "$puts" 1 "shared base layer uploaded once"
mounts=$(grep -c "\"POST /v2/[^\"]*mount=sha256%3A$base_hex[^\"]*\" 201" "$DST_LOG" || true)
[ "$mounts" -ge 1 ] || fail "shared base layer never mounted (mounts=$mounts)"
pass "shared base layer mounted into $mounts other repositories"

# Second run: everything is there, nothing moves.
jq 'with_entries(select(.key | test("\\*|/app:1$") | not))' "$IM_WORK/images.json" >"$IM_WORK/images-ok.json"
puts_before=$(grep -c '"PUT /v2/' "$DST_LOG" || true)
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-ok.json" --registry "$DST_ADDR" \
  --namespace def --log "" >"$IM_WORK/out2" 2>&1 || rc=$?
assert_eq "$rc" 0 "second run exits 0"
assert_eq "$(grep -c 'already present, skipped' "$IM_WORK/out2")" 13 "second run skips all 13 images"
assert_eq "$(grep -c '"PUT /v2/' "$DST_LOG" || true)" "$puts_before" "second run uploads nothing"
# -v shows each request (method, URL, status, time, bytes) and each decision; c4e1e45 showed 4 debug
# lines in all.
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-ok.json" --registry "$DST_ADDR" \
  --namespace def --log "" -v >"$IM_WORK/out2v" 2>&1 || rc=$?
assert_eq "$rc" 0 "second run with -v exits 0"
grep -qE "debug +HEAD http://$DST_ADDR/v2/team/app/manifests/1.0 -> (200|304) \([0-9]+ ms, [0-9]+ B down, 0 B up\)" "$IM_WORK/out2v" ||
  fail "-v: no line for a request: $(grep debug "$IM_WORK/out2v" | head -3)"
grep -qE "debug +$DST_ADDR/team/app:1.0: the destination has sha256:[0-9a-f]{64} already: skipped" "$IM_WORK/out2v" ||
  fail "-v: no line for the skip decision"
pass "-v: $(grep -c ' debug ' "$IM_WORK/out2v") debug lines (requests and decisions)"
manifest_heads() { # LINES_SRC LINES_DST STATUS: manifest HEADs answered STATUS (a regex) after those lines of the two logs
  local pattern="\"HEAD /v2/[^\"]*/manifests/[^\"]*\" $3 "
  echo $(($(tail -n +"$(($1 + 1))" "$SRC_LOG" | grep -cE "$pattern" || true) +
    $(tail -n +"$(($2 + 1))" "$DST_LOG" | grep -cE "$pattern" || true)))
}
noop() { # NAME [FLAG...]: the images-ok.json run again; sets src_lines/dst_lines to the logs' lines before it
  src_lines=$(wc -l <"$SRC_LOG") dst_lines=$(wc -l <"$DST_LOG")
  im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-ok.json" --registry "$DST_ADDR" \
    --namespace def --log "" "${@:2}" >"$IM_WORK/$1" 2>&1 || fail "run $1 failed: $(tail -n 2 "$IM_WORK/$1")"
}
# The digest of every source tag seen is kept for the next run: 11 (ns/shared-b:1 goes to two
# destinations; the pinned ns/app@digest has no tag).
cache=$XDG_CACHE_HOME/image-migrator/tag-digests
assert_eq "$(grep -vc '^#' "$cache")" 11 "the 11 source tags' digests are kept"
assert_eq "$(stat -c %a "$cache") $(stat -c %a "${cache%/*}")" "600 700" "tag digest file 0600 in a 0700 directory"
assert_eq "$(awk -v r="$SRC_ADDR/ns/app:1.0" '$1 == r { print $2 }' "$cache")" "$(raw_digest "$SRC_ADDR/ns/app:1.0")" \
  "the digest kept for ns/app:1.0 is its digest"
# Without them, each image's second HEAD names the digest the first one answered (If-None-Match):
# one 304 per image whose source is a tag (12; ns/app@digest asks only the destination, by digest,
# which is never conditional), at one end or the other...
noop out2a --digest-cache ""
assert_eq "$(manifest_heads "$src_lines" "$dst_lines" 304)" 12 "without tag digests, a no-op answers one HEAD per tagged image with 304"
# ...and takes the 304 as the answer: no image is asked again (12 x 2 HEADs, and the pinned one's 1).
assert_eq "$(manifest_heads "$src_lines" "$dst_lines" '[0-9]+')" 25 "the no-op sends 25 manifest HEADs in all"
assert_eq "$(grep -c 'already present, skipped' "$IM_WORK/out2a")" 13 "the no-op skips all 13 images"
# With them, both HEADs of an image name the digest kept: every tagged image's two are 304s.
noop out2b
assert_eq "$(manifest_heads "$src_lines" "$dst_lines" 304)" 24 "with tag digests, both HEADs of every tagged image are 304s"
assert_eq "$(manifest_heads "$src_lines" "$dst_lines" '[0-9]+')" 25 "the no-op sends 25 manifest HEADs in all"
assert_eq "$(grep -c 'already present, skipped' "$IM_WORK/out2b")" 13 "the no-op skips all 13 images"
# The digests are only a hint: wrong ones for every tag cost 200s, never a wrong answer.
cp "$cache" "$IM_WORK/cache.good"
wrong=$(raw_digest "$SRC_ADDR/ns/multi:v1")
awk -v w="$wrong" '/^#/ { print; next } {
  $2 = $1 ~ /multi:v1$/ ? substr($2, 1, 70) (substr($2, 71) == "0" ? "1" : "0") : w; print }' "$IM_WORK/cache.good" >"$cache"
same_digests() { cmp -s <(cut -d' ' -f1-2 "$cache") <(cut -d' ' -f1-2 "$IM_WORK/cache.good"); } # the day may differ
noop out2w
assert_eq "$(manifest_heads "$src_lines" "$dst_lines" 304)" 0 "wrong tag digests: no 304"
assert_eq "$(grep -c 'already present, skipped' "$IM_WORK/out2w")" 13 "wrong tag digests: still all 13 skipped"
same_digests || fail "the run did not put the right digests back ($(diff "$IM_WORK/cache.good" "$cache" | head -n 4))"
pass "the run put the right digests back"
printf '\0\377garbage\n%s\n' "$SRC_ADDR/ns/app:1.0 sha256:zz - x" >"$cache"
noop out2g
assert_eq "$(grep -c 'already present, skipped' "$IM_WORK/out2g")" 13 "a damaged tag digest file is ignored"
same_digests || fail "the damaged file was not replaced by the digests seen"
pass "the damaged file is replaced by the digests seen"
# Two destination tags swapped (team/paged:t1 holds t2's image and back): the digest named is not
# the destination's, the answer is a 200, and both are copied again. Without tag digests those two
# images come in one after the other, so one asks its source first and the other its destination.
put_tag() { # ADDR REPO:TAG MANIFEST: PUT MANIFEST under ADDR/REPO:TAG
  curl -sf -o /dev/null -X PUT -H "Content-Type: $(jq -r .mediaType <<<"$3")" --data-binary "$3" \
    "http://$1/v2/${2%:*}/manifests/${2##*:}" || fail "cannot put a manifest under $1/$2"
}
d1=$(raw_digest "$DST_ADDR/team/paged:t1") d2=$(raw_digest "$DST_ADDR/team/paged:t2")
[ "$d1" != "$d2" ] || fail "team/paged:t1 and t2 are one image: the swap below would test nothing"
m1=$(raw_manifest "$DST_ADDR/team/paged:t1") m2=$(raw_manifest "$DST_ADDR/team/paged:t2")
swap() {
  put_tag "$DST_ADDR" team/paged:t1 "$m2"
  put_tag "$DST_ADDR" team/paged:t2 "$m1"
  assert_eq "$(raw_digest "$DST_ADDR/team/paged:t1") $(raw_digest "$DST_ADDR/team/paged:t2")" "$d2 $d1" "destination tags swapped"
}
copied_back() { # OUT
  grep -q "OK $SRC_ADDR/ns/paged:t1 -> $DST_ADDR/team/paged:t1 $d1 .* replaced=$d2$" "$IM_WORK/$1" ||
    fail "team/paged:t1 not copied back ($(grep 'paged:t1' "$IM_WORK/$1"))"
  grep -q "OK $SRC_ADDR/ns/paged:t2 -> $DST_ADDR/team/paged:t2 $d2 .* replaced=$d1$" "$IM_WORK/$1" ||
    fail "team/paged:t2 not copied back ($(grep 'paged:t2' "$IM_WORK/$1"))"
  assert_eq "$(grep -c 'already present, skipped' "$IM_WORK/$1")" 11 "the 11 others are skipped"
  check ns/paged:t1 team/paged:t1
  check ns/paged:t2 team/paged:t2
}
swap
noop out2c --digest-cache ""
copied_back out2c
assert_eq "$(manifest_heads "$src_lines" "$dst_lines" 304)" 10 "without tag digests: no 304 for the two swapped tags"
swap
noop out2d
copied_back out2d
assert_eq "$(manifest_heads "$src_lines" "$dst_lines" 304)" 22 "with tag digests: the two swapped tags' sources 304, not their destinations"
# A source tag moved since the digest was kept: its source answers 200 with the new digest, the
# destination 304 with the old one, and the image is copied.
d3=$(raw_digest "$SRC_ADDR/ns/paged:t3") d4=$(raw_digest "$SRC_ADDR/ns/paged:t2")
[ "$d3" != "$d4" ] || fail "ns/paged:t3 and t2 are one image: moving t3 to t2's would test nothing"
put_tag "$SRC_ADDR" ns/paged:t3 "$(raw_manifest "$SRC_ADDR/ns/paged:t2")"
noop out2e
grep -q "OK $SRC_ADDR/ns/paged:t3 -> $DST_ADDR/team/paged:t3 $d4 .* replaced=$d3$" "$IM_WORK/out2e" ||
  fail "moved ns/paged:t3 not copied ($(grep 'paged:t3' "$IM_WORK/out2e"))"
assert_eq "$(grep -c 'already present, skipped' "$IM_WORK/out2e")" 12 "the 12 others are skipped"
assert_eq "$(manifest_heads "$src_lines" "$dst_lines" 304)" 23 "the moved tag's destination 304s (at the old digest), not its source"
check ns/paged:t3 team/paged:t3
assert_eq "$(awk -v r="$SRC_ADDR/ns/paged:t3" '$1 == r { print $2 }' "$cache")" "$d4" "the moved tag's new digest is kept"

# image-syncer's single --config file, YAML this time, environment defaults for rule 8.
cat >"$IM_WORK/config.yaml" <<YAML
auth:
  "$SRC_ADDR": {insecure: true}
  "$DST_ADDR": {insecure: true}
images:
  "$SRC_ADDR/ns/multi:v1": ""
  "$SRC_ADDR/ns/app:1.0,1.1": "$DST_ADDR/syncer/app"
YAML
rc=0
DEFAULT_REGISTRY=$DST_ADDR DEFAULT_NAMESPACE=fromenv im_run "$IM_BIN" --config "$IM_WORK/config.yaml" --log "" \
  >"$IM_WORK/out3" 2>&1 || rc=$?
cat "$IM_WORK/out3"
assert_eq "$rc" 0 "--config YAML run exits 0"
check ns/multi:v1 fromenv/multi:v1
# image-syncer's "repo:tag1,tag2": each tag copied under its own name.
check ns/app:1.0 syncer/app:1.0
check ns/app:1.1 syncer/app:1.1
echo "test_migrate_plain: all checks passed"

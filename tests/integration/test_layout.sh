#!/usr/bin/env bash
# Air-gapped, two-hop migrations through local OCI image layouts ("oci:DIR[:TAG]"): export a
# repository (every tag, a multi-arch index, a cosign signature) from a registry to disk, import it
# into another registry, digests unchanged at every step; skopeo reads what we wrote and we read what
# skopeo wrote; a corrupted file on disk is refused before anything is pushed; a re-run moves nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
# Runs pass --blob-cache "": what each copies, earlier runs put into other repositories of the same
# registry, and the copy itself is what is tested (not a mount from the blob memory).

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
make_layout "$L" v1 --layers 2 --layer-size 200000 --seed lay1 >/dev/null
make_layout "$L" multi --layers 1 --layer-size 100000 --platforms linux/amd64,linux/arm64 --seed lay2 >/dev/null
seed "$L" v1 "$SRC_ADDR/ns/app:v1"
seed "$L" multi "$SRC_ADDR/ns/app:multi"
cd "$IM_WORK"
cat >auth.json <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
run() {
  echo "$1" >images.json
  shift
  im_run "$IM_BIN" --blob-cache "" --auth auth.json --images images.json -r 0 --log "" "$@"
}
sky() { skopeo "$@" --retry-times 0 2>&1; }
oci_digest() { echo "sha256:$(skopeo inspect --raw "oci:$1" | sha256sum | cut -d' ' -f1)"; }

# A cosign-style signature of v1 (tag sha256-<hex>.sig), pushed with curl: it must travel too.
D1=$(raw_digest "$SRC_ADDR/ns/app:v1")
cosign_sign "$SRC_ADDR" ns/app "$D1" sig >/dev/null
SIG_TAG="${D1/:/-}.sig"

# 1. Export: every tag of a repository into a layout directory that does not exist yet.
rc=0
run "{\"$SRC_ADDR/ns/app\": \"oci:$IM_WORK/export\"}" >export.out 2>&1 || rc=$?
cat export.out
assert_eq "$rc" 0 "export to oci:$IM_WORK/export"
grep -q "Images(2) migration finished, 0 images tasks failed" export.out || fail "export did not copy 2 images"
assert_eq "$(jq -r .imageLayoutVersion export/oci-layout)" "1.0.0" "oci-layout written"
assert_eq "$(jq -r '[.manifests[].annotations["org.opencontainers.image.ref.name"]] | sort | join(" ")' export/index.json)" \
  "multi $SIG_TAG v1" "index.json names v1, multi and the signature"
for tag in v1 multi "$SIG_TAG"; do
  assert_eq "$(oci_digest "export:$tag")" "$(raw_digest "$SRC_ADDR/ns/app:$tag")" "skopeo reads export:$tag with the source digest"
done
sky copy --all --preserve-digests --dest-tls-verify=false "oci:export:multi" "docker://$DST_ADDR/check/multi:1" >skopeo-check.out ||
  { cat skopeo-check.out; fail "skopeo could not copy every platform out of the exported layout"; }
assert_eq "$(raw_digest "$DST_ADDR/check/multi:1")" "$(raw_digest "$SRC_ADDR/ns/app:multi")" "skopeo copies the exported index (all platforms, blobs verified by skopeo)"
[ -z "$(find export/blobs -name '*.tmp-*')" ] || fail "temporary files left in the layout"
pass "no temporary files left"

rc=0
run "{\"$SRC_ADDR/ns/app\": \"oci:$IM_WORK/export\"}" >export2.out 2>&1 || rc=$?
assert_eq "$rc" 0 "export re-run"
assert_eq "$(grep -c "OK $SRC_ADDR/ns/app:.*already present, skipped" export2.out)" 2 "re-run: both images already in the layout"
assert_eq "$(grep -c "OK referrer $SRC_ADDR/ns/app:$SIG_TAG .*already present, skipped" export2.out)" 1 "re-run: the signature too"
grep -q "copied 0 bytes" export2.out || fail "re-run moved bytes"

# 2. Import: the layout (every tag) into the other registry.
rc=0
run "{\"oci:$IM_WORK/export\": \"$DST_ADDR/ns/app\"}" >import.out 2>&1 || rc=$?
cat import.out
assert_eq "$rc" 0 "import from the layout"
for tag in v1 multi "$SIG_TAG"; do
  assert_eq "$(raw_digest "$DST_ADDR/ns/app:$tag")" "$(raw_digest "$SRC_ADDR/ns/app:$tag")" "$tag: source digest after registry -> disk -> registry"
done
pull_all_platforms "$DST_ADDR/ns/app:multi"
pass "imported index pulls back, every platform"

# 2b. Into a registry that wants chunked uploads: PATCH + PUT from the files.
echo "{\"$SRC_ADDR\": {\"insecure\": true}, \"$DST_ADDR\": {\"insecure\": true, \"chunked\": true}}" >auth-chunked.json
echo "{\"oci:$IM_WORK/export:v1\": \"$DST_ADDR/chunked/app\"}" >images-chunked.json
: >"$DST_LOG"
rc=0
im_run "$IM_BIN" --blob-cache "" --auth auth-chunked.json --images images-chunked.json -r 0 --log "" >chunked.out 2>&1 || rc=$?
assert_eq "$rc" 0 "import with chunked uploads"
assert_eq "$(raw_digest "$DST_ADDR/chunked/app:v1")" "$D1" "chunked import keeps the digest"
[ "$(grep -c '"PATCH /v2/chunked/app/blobs/uploads/' "$DST_LOG")" -ge 3 ] || fail "the blobs were not uploaded in chunks"
pass "the blobs went up as PATCH + PUT"

# 3. One tag, layout to layout, under a new tag.
rc=0
run "{\"oci:$IM_WORK/export:v1\": \"oci:$IM_WORK/second:release\"}" --no-referrers >l2l.out 2>&1 || rc=$?
assert_eq "$rc" 0 "layout -> layout"
assert_eq "$(oci_digest "second:release")" "$D1" "layout -> layout keeps the digest"

# 4. A layout written by skopeo is a source too.
sky copy --preserve-digests --src-tls-verify=false "docker://$SRC_ADDR/ns/app:v1" "oci:$IM_WORK/by-skopeo:v1" >sk.out ||
  { cat sk.out; fail "skopeo could not write a layout"; }
rc=0
run "{\"oci:$IM_WORK/by-skopeo:v1\": \"$DST_ADDR/sk/app\"}" >sk-import.out 2>&1 || rc=$?
cat sk-import.out
assert_eq "$rc" 0 "import of a skopeo layout"
assert_eq "$(raw_digest "$DST_ADDR/sk/app:v1")" "$(oci_digest "by-skopeo:v1")" "digest of skopeo's layout kept"

# 5. A corrupted blob on disk: refused, nothing pushed.
layer=$(skopeo inspect --raw oci:export:v1 | jq -r '.layers[0].digest')
f=export/blobs/sha256/${layer#sha256:}
printf 'X' | dd of="$f" bs=1 seek=1000 conv=notrunc status=none
rc=0
run "{\"oci:$IM_WORK/export:v1\": \"$DST_ADDR/corrupt/app\"}" >corrupt.out 2>&1 || rc=$?
cat corrupt.out
assert_eq "$rc" 1 "a corrupted layout blob fails the image"
grep -q "FAILED oci:$IM_WORK/export:v1 .*hashes to .*not $layer" corrupt.out || fail "no clear digest error naming the blob"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -I "http://$DST_ADDR/v2/corrupt/app/blobs/$layer")" 404 "the corrupted blob was not committed"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://$DST_ADDR/v2/corrupt/app/manifests/v1")" 404 "no manifest pushed"

# 6. Bad input: one clear line, exit 1.
rc=0
run "{\"oci:$IM_WORK/nowhere\": \"$DST_ADDR/x/app\", \"oci:$IM_WORK/export:nosuchtag\": \"$DST_ADDR/y/app\"}" >bad.out 2>&1 || rc=$?
cat bad.out
assert_eq "$rc" 1 "missing layout and missing tag fail"
grep -q "oci:$IM_WORK/nowhere is not an OCI image layout (no index.json)" bad.out || fail "no clear error for a missing layout"
grep -q "FAILED oci:$IM_WORK/export:nosuchtag .*not found" bad.out || fail "no clear error for a missing tag"
rc=0
run "{\"oci:$IM_WORK/export\": \"\"}" >bad2.out 2>&1 || rc=$?
grep -q "a source in an OCI layout needs a destination" bad2.out || { cat bad2.out; fail "empty destination for a layout not explained"; }
rc=0
run "{\"$SRC_ADDR/ns/app@$D1\": \"oci:$IM_WORK/bydigest\"}" >bad3.out 2>&1 || rc=$?
assert_eq "$rc" 1 "an image by digest into a layout without a tag: refused"
grep -q "needs a tag in an OCI layout (oci:$IM_WORK/bydigest:TAG)" bad3.out || { cat bad3.out; fail "unclear error"; }
rc=0
run "{\"$SRC_ADDR/ns/app@$D1\": \"oci:$IM_WORK/bydigest:pinned\"}" >ok3.out 2>&1 || rc=$?
assert_eq "$rc" 0 "with a tag it is copied"
assert_eq "$(oci_digest "bydigest:pinned")" "$D1" "by digest into a layout, under the tag given"

# An index.json edited by hand with a number where a name belongs: that entry is passed over, no crash.
jq '.manifests[0].annotations["org.opencontainers.image.ref.name"] = 2 | .manifests[1].mediaType = 5' export/index.json >idx.tmp
mv idx.tmp export/index.json
rc=0
run "{\"oci:$IM_WORK/export\": \"$DST_ADDR/odd/app\"}" >odd.out 2>&1 || rc=$?
cat odd.out
grep -q "internal error" odd.out && fail "a wrongly typed index.json field crashed the run"
grep -q "Images(.) migration finished" odd.out || fail "no summary after an odd index.json"
pass "a wrongly typed index.json field does not crash the run (exit $rc)"
echo "layout: OK"

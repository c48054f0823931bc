#!/usr/bin/env bash
# Referrers travel with their image. docker-registry 2.8 has no referrers API, so the source stores
# them the way clients do on such registries: cosign's "sha256-<hex>.sig/.att" tags, and the OCI 1.1
# referrers tag schema ("sha256-<hex>" = an index of manifests whose `subject` is the image). The
# artifacts are built here and pushed with curl; the image itself is seeded with skopeo.
# Checked: everything that refers to a copied image (and a signature of its SBOM) arrives byte for byte,
# nothing of an image that was not copied does, a signature added later arrives on a re-run of an
# image that is already there, --no-referrers copies none, an all-tags rule does not count the
# signature tags as images, --dry-run plans them without writing, and a re-run of an all-tags rule
# finds a signature added to one image of an index, and an image kept out by --no-overwrite brings none.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
make_layout "$L" v1 --layers 1 --layer-size 50000 --seed ref1 >/dev/null
make_layout "$L" v2 --layers 1 --layer-size 50000 --seed ref2 >/dev/null
seed "$L" v1 "$SRC_ADDR/ns/app:v1"
seed "$L" v2 "$SRC_ADDR/ns/app:v2"
A=$IM_WORK/artifacts
mkdir -p "$A"
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_INDEX=application/vnd.oci.image.index.v1+json

size() { stat -c %s "$1"; }

D1=$(raw_digest "$SRC_ADDR/ns/app:v1")
D2=$(raw_digest "$SRC_ADDR/ns/app:v2")
V1_SIZE=$(raw_manifest "$SRC_ADDR/ns/app:v1" | wc -c)

# An SBOM as an OCI 1.1 artifact whose subject is v1, pushed by digest, and the referrers index that a
# client writes under sha256-<hex> on a registry without the referrers API.
echo '{}' | tr -d '\n' >"$A/empty.json"
printf '{"spdxVersion":"SPDX-2.3","name":"app-v1"}' >"$A/sbom.spdx.json"
push_blob "$SRC_ADDR" ns/app "$A/empty.json"
push_blob "$SRC_ADDR" ns/app "$A/sbom.spdx.json"
printf '{"schemaVersion":2,"mediaType":"%s","artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"%s"},"layers":[{"mediaType":"application/spdx+json","size":%s,"digest":"%s"}],"subject":{"mediaType":"%s","size":%s,"digest":"%s"}}' \
  "$OCI_MANIFEST" "$(file_digest "$A/empty.json")" "$(size "$A/sbom.spdx.json")" "$(file_digest "$A/sbom.spdx.json")" "$OCI_MANIFEST" "$V1_SIZE" "$D1" >"$A/sbom.json"
SBOM=$(file_digest "$A/sbom.json")
push_manifest "$SRC_ADDR" ns/app "$SBOM" "$A/sbom.json" "$OCI_MANIFEST"
printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","size":%s,"digest":"%s","artifactType":"application/spdx+json"}]}' \
  "$OCI_INDEX" "$OCI_MANIFEST" "$(size "$A/sbom.json")" "$SBOM" >"$A/referrers-index.json"
push_manifest "$SRC_ADDR" ns/app "${D1/:/-}" "$A/referrers-index.json" "$OCI_INDEX"
SIG1=$(cosign_sign "$SRC_ADDR" ns/app "$D1" sig)
SBOM_SIG=$(cosign_sign "$SRC_ADDR" ns/app "$SBOM" sig) # a signature of the SBOM: a referrer of a referrer
SIG2=$(cosign_sign "$SRC_ADDR" ns/app "$D2" sig)        # v2's: must not follow v1
pass "source: v1 with a cosign signature, an SBOM (signed) in the sha256-<hex> index; v2 with a signature"

cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
run() {
  local images=$1
  shift
  echo "$images" >"$IM_WORK/images.json"
  im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" -r 0 --log "" "$@"
}
status() { curl -s -o /dev/null -w '%{http_code}' -I -H "Accept: $OCI_MANIFEST, $OCI_INDEX" "http://$1/v2/$2/manifests/$3"; }
tags() { curl -sf "http://$1/v2/$2/tags/list" | jq -r '.tags | sort | join(" ")'; }

# 1. One tag: its referrers come along, byte for byte.
rc=0
run "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/ns/app\"}" >"$IM_WORK/out1" 2>&1 || rc=$?
cat "$IM_WORK/out1"
assert_eq "$rc" 0 "v1 copied"
for tag in v1 "${D1/:/-}" "${D1/:/-}.sig" "${SBOM/:/-}.sig"; do
  assert_eq "$(raw_digest "$DST_ADDR/ns/app:$tag")" "$(raw_digest "$SRC_ADDR/ns/app:$tag")" "ns/app:$tag arrived byte for byte"
done
assert_eq "$(status "$DST_ADDR" ns/app "$SBOM")" 200 "the SBOM manifest (listed in the referrers index) arrived by digest"
assert_eq "$(status "$DST_ADDR" ns/app "${D2/:/-}.sig")" 404 "v2's signature did not follow v1"
assert_eq "$(tags "$DST_ADDR" ns/app)" "$(echo "${D1/:/-}" "${D1/:/-}.sig" "${SBOM/:/-}.sig" v1 | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" \
  "destination tags: v1, its referrers index and the two signatures"
grep -q "OK $SRC_ADDR/ns/app:v1 -> $DST_ADDR/ns/app:v1 .*referrers=4" "$IM_WORK/out1" ||
  fail "the image line does not count its 4 referrers (SBOM, SBOM signature, index, signature)"
grep -q "referrer $SRC_ADDR/ns/app:${SBOM/:/-}.sig" "$IM_WORK/out1" || fail "no log line for the SBOM's signature"
skopeo inspect --tls-verify=false --raw "docker://$DST_ADDR/ns/app@$SBOM" | jq -e --arg d "$D1" '.subject.digest == $d' >/dev/null ||
  fail "the SBOM's subject is not v1 at the destination"
pass "the copied SBOM still names v1 as its subject"
for blob in "$(file_digest "$A/sbom.spdx.json")" "$(jq -r '.layers[0].digest' <(curl -sf -H "Accept: $OCI_MANIFEST" "http://$SRC_ADDR/v2/ns/app/manifests/$SIG1"))"; do
  assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -I "http://$DST_ADDR/v2/ns/app/blobs/$blob")" 200 "artifact blob ${blob:0:19} present"
done

# 2. Signed later: an image already at the destination gets its new signature on the next run.
ATT=$(cosign_sign "$SRC_ADDR" ns/app "$D1" att)
rc=0
run "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/ns/app\"}" >"$IM_WORK/out2" 2>&1 || rc=$?
cat "$IM_WORK/out2"
assert_eq "$rc" 0 "re-run"
grep -q "OK $SRC_ADDR/ns/app:v1 -> .* already present, skipped .*referrers=5" "$IM_WORK/out2" || fail "re-run did not look at referrers"
grep -q "OK referrer $SRC_ADDR/ns/app:${D1/:/-}.att -> .*bytes=" "$IM_WORK/out2" || fail "the new attestation was not copied"
assert_eq "$(raw_digest "$DST_ADDR/ns/app:${D1/:/-}.att")" "$ATT" "a signature added after the first copy arrives on the re-run"

# 3. --no-referrers: the image only.
rc=0
run "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/plain/app\"}" --no-referrers >"$IM_WORK/out3" 2>&1 || rc=$?
assert_eq "$rc" 0 "--no-referrers copied"
assert_eq "$(tags "$DST_ADDR" plain/app)" "v1" "--no-referrers: only the image's tag"

# 4. All tags: the signature tags are not images of their own, but each follows its image.
rc=0
run "{\"$SRC_ADDR/ns/app\": \"$DST_ADDR/all/app\"}" >"$IM_WORK/out4" 2>&1 || rc=$?
cat "$IM_WORK/out4"
assert_eq "$rc" 0 "all tags copied"
grep -q "Images(2) migration finished, 0 images tasks failed" "$IM_WORK/out4" || fail "signature tags were counted as images"
assert_eq "$(tags "$DST_ADDR" all/app)" "$(tags "$SRC_ADDR" ns/app)" "every tag of the repository arrived"
assert_eq "$(raw_digest "$DST_ADDR/all/app:${D2/:/-}.sig")" "$SIG2" "v2's signature followed v2"

# 5. --dry-run: referrers are planned, nothing is written.
rc=0
run "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/dry/app\"}" --dry-run >"$IM_WORK/out5" 2>&1 || rc=$?
cat "$IM_WORK/out5"
assert_eq "$rc" 0 "dry run"
grep -q "PLAN referrer $SRC_ADDR/ns/app:${D1/:/-}.sig" "$IM_WORK/out5" || fail "dry run does not show the signature"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://$DST_ADDR/v2/dry/app/tags/list")" 404 "dry run wrote nothing"
# 6. A multi-arch image signed recursively (cosign sign --recursive): the index and each image have a
# signature; all of them follow the index.
make_layout "$L" multi --layers 1 --layer-size 30000 --platforms linux/amd64,linux/arm64 --seed refm >/dev/null
seed "$L" multi "$SRC_ADDR/ns/app:multi"
DM=$(raw_digest "$SRC_ADDR/ns/app:multi")
CHILD=$(raw_manifest "$SRC_ADDR/ns/app:multi" | jq -r '.manifests[1].digest')
SIGM=$(cosign_sign "$SRC_ADDR" ns/app "$DM" sig)
SIGC=$(cosign_sign "$SRC_ADDR" ns/app "$CHILD" sig)
rc=0
run "{\"$SRC_ADDR/ns/app:multi\": \"$DST_ADDR/multi/app\"}" >"$IM_WORK/out6" 2>&1 || rc=$?
cat "$IM_WORK/out6"
assert_eq "$rc" 0 "multi-arch image copied"
assert_eq "$(raw_digest "$DST_ADDR/multi/app:${DM/:/-}.sig")" "$SIGM" "the index's signature followed it"
assert_eq "$(raw_digest "$DST_ADDR/multi/app:${CHILD/:/-}.sig")" "$SIGC" "the signature of one of its images followed it too"
# 7. Re-runs of all-tags rules: an index already present whose image (not the index) was signed after
# the first copy gets the new signature; 20 tags with nothing referring to them are skipped (those a
# run settles from its HEADs alone, once it knows the source has no referrers API).
seed "$L" v1 "$SRC_ADDR/idx/app:t00"
raw_manifest "$SRC_ADDR/idx/app:t00" >"$A/t00.json"
for n in $(seq -w 1 19); do push_manifest "$SRC_ADDR" idx/app "t$n" "$A/t00.json" "$OCI_MANIFEST"; done
seed "$L" multi "$SRC_ADDR/idx/multi:zmulti"
RULES7="{\"$SRC_ADDR/idx/app\": \"$DST_ADDR/idx/app\", \"$SRC_ADDR/idx/multi\": \"$DST_ADDR/idx/multi\"}"
rc=0
run "$RULES7" >"$IM_WORK/out7" 2>&1 || rc=$?
assert_eq "$rc" 0 "20 tags and an unsigned multi-arch image copied"
SIGC2=$(cosign_sign "$SRC_ADDR" idx/multi "$CHILD" sig)
rc=0
run "$RULES7" >"$IM_WORK/out7" 2>&1 || rc=$?
cat "$IM_WORK/out7"
assert_eq "$rc" 0 "re-run after one of the index's images was signed"
assert_eq "$(grep -c "OK $SRC_ADDR/idx/app:t[0-9]* -> .* already present, skipped" "$IM_WORK/out7")" 20 "the 20 tags were skipped"
grep -q "OK $SRC_ADDR/idx/multi:zmulti -> .* already present, skipped .*referrers=1" "$IM_WORK/out7" ||
  fail "re-run did not look at the index's images"
assert_eq "$(raw_digest "$DST_ADDR/idx/multi:${CHILD/:/-}.sig")" "$SIGC2" "the new signature of one of the index's images arrived"
# 8. --no-overwrite: an image kept out (its tag holds another image at the destination) brings none
# of its referrers either: no signature tag for an image that is not there.
run "{\"$SRC_ADDR/ns/app:v2\": \"$DST_ADDR/kept/app:v1\"}" >"$IM_WORK/out8a" 2>&1 || fail "seeding kept/app:v1 failed"
rc=0
run "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/kept/app\"}" --no-overwrite >"$IM_WORK/out8" 2>&1 || rc=$?
cat "$IM_WORK/out8"
assert_eq "$rc" 0 "--no-overwrite over another image: exit 0"
grep -q "KEPT $SRC_ADDR/ns/app:v1 -> $DST_ADDR/kept/app:v1" "$IM_WORK/out8" || fail "--no-overwrite: no KEPT line"
assert_eq "$(raw_digest "$DST_ADDR/kept/app:v1")" "$D2" "--no-overwrite: the tag still holds the other image"
grep -q "referrer" "$IM_WORK/out8" && fail "--no-overwrite: a referrer of the kept-out image was handled"
assert_absent "$DST_ADDR/kept/app:${D1/:/-}.sig" "--no-overwrite: no signature of the kept-out image at the destination"
echo "referrers: OK"

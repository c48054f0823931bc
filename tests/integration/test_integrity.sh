#!/usr/bin/env bash
# Nothing is lost: a blob whose bytes do not match its digest is never pushed (the upload is aborted
# before its last byte, the tag never appears); foreign (non-distributable) layers are referenced,
# not uploaded.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

# Foreign layers are refused by docker-registry unless their URLs are allowed.
allow='REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW=["^https?://"]'
start_registry src plain "$allow"
start_registry dst plain "$allow"
L=$IM_WORK/layout
make_layout "$L" good --layers 2 --layer-size 200000 --seed good >/dev/null
make_layout "$L" bad --layers 2 --layer-size 300000 --seed bad >/dev/null
seed "$L" good "$SRC_ADDR/ns/good:1"
seed "$L" bad "$SRC_ADDR/ns/bad:1"
cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON

# Corrupt one layer of ns/bad in the source registry's storage: same size, other bytes.
layer=$(raw_manifest "$SRC_ADDR/ns/bad:1" | jq -r '.layers[1].digest')
hex=${layer#sha256:}
data="$SRC_DIR/data/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"
[ -f "$data" ] || fail "layer file not found in the source storage: $data"
size=$(stat -c %s "$data")
head -c "$size" /dev/zero >"$data"
pass "corrupted $layer in the source registry ($size bytes of zeros)"

cat >"$IM_WORK/images.json" <<JSON
{"$SRC_ADDR/ns/bad:1": "$DST_ADDR/ns/bad", "$SRC_ADDR/ns/good:1": "$DST_ADDR/ns/good"}
JSON
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" -r 1 --log "" >"$IM_WORK/out" 2>&1 || rc=$?
cat "$IM_WORK/out"
assert_eq "$rc" 1 "exit 1 when a blob does not match its digest"
grep -q "FAILED $SRC_ADDR/ns/bad:1 .*hashes to sha256:" "$IM_WORK/out" || fail "no digest-mismatch message"
pass "the failure names the image and the mismatch"
grep -q "Images(2) migration finished, 1 images tasks failed" "$IM_WORK/out" || fail "summary does not count the failure"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$DST_ADDR/v2/ns/bad/manifests/1")
assert_eq "$code" 404 "no tag for the corrupted image at the destination"
code=$(curl -s -o /dev/null -w '%{http_code}' -I "http://$DST_ADDR/v2/ns/bad/blobs/$layer")
assert_eq "$code" 404 "the corrupted blob was never committed at the destination"
assert_eq "$(raw_digest "$DST_ADDR/ns/good:1")" "$(raw_digest "$SRC_ADDR/ns/good:1")" "the other image still copied"

# A foreign layer: the manifest references it by URL; it is not uploaded anywhere.
manifest=$(raw_manifest "$SRC_ADDR/ns/good:1")
foreign_digest="sha256:$(printf 'foreign layer' | sha256sum | cut -d' ' -f1)"
echo "$manifest" | jq -c --arg d "$foreign_digest" \
  '.layers += [{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":$d,"size":13,"urls":["https://example.com/foreign.tar.gz"]}]' \
  >"$IM_WORK/foreign.json"
# The source has the config and layers in ns/good only: mount them into ns/foreign first.
for d in $(echo "$manifest" | jq -r '.config.digest, .layers[].digest'); do
  curl -s -o /dev/null -X POST "http://$SRC_ADDR/v2/ns/foreign/blobs/uploads/?mount=$d&from=ns/good"
done
code=$(curl -s -o "$IM_WORK/put.out" -w '%{http_code}' -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary @"$IM_WORK/foreign.json" "http://$SRC_ADDR/v2/ns/foreign/manifests/1")
[ "$code" = 201 ] || fail "could not push the foreign-layer manifest to the source ($code: $(cat "$IM_WORK/put.out"))"
cat >"$IM_WORK/images2.json" <<JSON
{"$SRC_ADDR/ns/foreign:1": "$DST_ADDR/ns/foreign"}
JSON
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images2.json" -r 0 --log "" >"$IM_WORK/out2" 2>&1 || rc=$?
cat "$IM_WORK/out2"
assert_eq "$rc" 0 "image with a foreign layer copied"
grep -q "foreign=1" "$IM_WORK/out2" || fail "foreign layer not reported"
assert_eq "$(raw_digest "$DST_ADDR/ns/foreign:1")" "sha256:$(sha256sum "$IM_WORK/foreign.json" | cut -d' ' -f1)" "manifest with foreign layer: digest preserved"
code=$(curl -s -o /dev/null -w '%{http_code}' -I "http://$DST_ADDR/v2/ns/foreign/blobs/$foreign_digest")
assert_eq "$code" 404 "foreign layer not uploaded"
echo "test_integrity: all checks passed"

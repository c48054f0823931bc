#!/usr/bin/env bash
# Security, class 7 (issue 17): the smaller ones.
# 1. sha512 digests are verified like sha256 ones: a layer announced as sha512:X whose bytes hash
#    otherwise is refused (an OCI layout destination stored it unverified), a correct one is copied
#    into a layout and into a real docker-registry.
# 2. Text from a registry (an error's message) reaches the log and the terminal with its control
#    characters escaped: it cannot forge a "migration finished, 0 images tasks failed" line or send
#    terminal escape sequences; the JSON log stays one valid object per line.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry dst htpasswd
L=$IM_WORK/layout
make_layout "$L" v1 --layers 1 --layer-size 2048 --seed sha512 >/dev/null
good=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="v1") | .digest' "$L/index.json")
head -c 3000 /dev/urandom >"$IM_WORK/layer.bin"
head -c 3000 /dev/urandom >"$IM_WORK/other.bin"
right="sha512:$(sha512sum "$IM_WORK/layer.bin" | cut -d' ' -f1)"
wrong="sha512:$(sha512sum "$IM_WORK/other.bin" | cut -d' ' -f1)"
with_layer() { # DIGEST OUT: the v1 manifest with one more layer, DIGEST, 3000 bytes
  jq -c --arg d "$1" '.layers += [{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":$d,"size":3000}]' \
    "$L/blobs/sha256/${good#sha256:}" >"$2"
}
with_layer "$wrong" "$IM_WORK/wrong.json"
with_layer "$right" "$IM_WORK/right.json"
start_hostile bad "$L" v1 --manifest "$IM_WORK/wrong.json" --blob "$wrong=$IM_WORK/layer.bin"
start_hostile ok "$L" v1 --manifest "$IM_WORK/right.json" --blob "$right=$IM_WORK/layer.bin"
cat >"$IM_WORK/auth.json" <<JSON
{"$BAD_ADDR": {"insecure": true}, "$OK_ADDR": {"insecure": true},
 "$DST_ADDR": {"insecure": true, "username": "alice", "password": "alicepass"}}
JSON

echo "{\"$BAD_ADDR/team/app:v1\": \"oci:$IM_WORK/out-bad:v1\"}" >"$IM_WORK/bad.json"
run_im bad --auth "$IM_WORK/auth.json" --images "$IM_WORK/bad.json" --log "" --digest-cache "" --retries 0
cat "$IM_WORK/bad.out"
assert_eq "$rc" 1 "a sha512 layer whose bytes hash otherwise fails the image"
grep -q "hashes to sha512:" "$IM_WORK/bad.out" || fail "the failure does not give the bytes' sha512"
[ ! -e "$IM_WORK/out-bad/blobs/sha512/${wrong#sha512:}" ] || fail "the unverified bytes were stored in the layout"
pass "nothing unverified stored in the layout"

echo "{\"$OK_ADDR/team/app:v1\": [\"oci:$IM_WORK/out-ok:v1\", \"$DST_ADDR/org/sha512:v1\"]}" >"$IM_WORK/ok.json"
run_im ok --auth "$IM_WORK/auth.json" --images "$IM_WORK/ok.json" --log "" --digest-cache "" --retries 0
cat "$IM_WORK/ok.out"
assert_eq "$rc" 0 "a correct sha512 layer is copied into a layout and a registry"
assert_eq "sha512:$(sha512sum "$IM_WORK/out-ok/blobs/sha512/${right#sha512:}" | cut -d' ' -f1)" "$right" \
  "the layout's sha512 blob holds those bytes"
assert_eq "$(IM_CREDS=alice:alicepass raw_digest "$DST_ADDR/org/sha512:v1")" \
  "sha256:$(sha256sum "$IM_WORK/right.json" | cut -d' ' -f1)" "the registry got the manifest byte for byte"

# 2. A registry's error message that tries to forge a line and drive the terminal.
forged=$'gone\n2026-12-05 13:00:00.000 info  Images(1) migration finished, 0 images tasks failed, 0 tasks generate failed\x1b[2J\x1b]0;owned\x07\r'
start_hostile liar "$L" v1 --error-message "$forged" --error-status 400
cat >"$IM_WORK/liar-auth.json" <<JSON
{"$LIAR_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true, "username": "alice", "password": "alicepass"}}
JSON
echo "{\"$LIAR_ADDR/team/app:v1\": \"$DST_ADDR/org/liar:v1\"}" >"$IM_WORK/liar.json"
run_im liar --auth "$IM_WORK/liar-auth.json" --images "$IM_WORK/liar.json" --log "$IM_WORK/liar.log" --digest-cache "" --retries 0
cat -v "$IM_WORK/liar.out"
assert_eq "$rc" 1 "the image fails"
assert_eq "$(grep -cE '^[0-9-]+ [0-9:.]+ info  Images\(' "$IM_WORK/liar.out")" 1 "one summary line on the terminal: the real one"
grep -q 'Images(1) migration finished, 1 images tasks failed' "$IM_WORK/liar.out" || fail "the real summary is missing"
for f in "$IM_WORK/liar.out" "$IM_WORK/liar.log"; do
  if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$f"; then fail "a control character reached $(basename "$f")"; fi
done
grep -qF 'gone\n2026-12-05' "$IM_WORK/liar.out" || fail "the registry's message is not shown escaped"
pass "the registry's text is shown escaped, in one line, in the output and the log"
run_im liarjson --auth "$IM_WORK/liar-auth.json" --images "$IM_WORK/liar.json" --log "$IM_WORK/liar.jsonl" \
  --log-format json --digest-cache "" --retries 0
while IFS= read -r line; do
  jq -e . >/dev/null <<<"$line" || fail "a JSON log line is not JSON: $line"
done <"$IM_WORK/liar.jsonl"
assert_eq "$(jq -r .msg "$IM_WORK/liar.jsonl" | grep -c '^Images(')" 1 "the JSON log has one summary"
if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$IM_WORK/liar.jsonl"; then fail "a control character reached the JSON log"; fi
pass "the JSON log stays one valid object per line"

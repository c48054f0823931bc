#!/usr/bin/env bash
# Security, class 2 (issue 17): no header injection. A manifest's mediaType reaches the
# Content-Type of the PUT at the destination; with CR/LF in it, a compromised source smuggled a
# second request into the connection (a DELETE of another repository's manifest that carried the
# user's Authorization). Media types must follow RFC 6838, and http::Client refuses any header with
# CR, LF or NUL. Destination: a real docker-registry with htpasswd (delete enabled).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry dst htpasswd
L=$IM_WORK/layout
make_layout "$L" v1 --layers 1 --layer-size 2048 --seed good >/dev/null
make_layout "$L" victim --layers 1 --layer-size 2048 --seed victim >/dev/null
seed "$L" victim "$DST_ADDR/org/victim:latest"
victim=$(raw_digest "$DST_ADDR/org/victim:latest")

# The source's manifest: the v1 image, its mediaType carrying a whole second request.
good=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="v1") | .digest' "$L/index.json")
injected=$'application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 0\r\n\r\nDELETE /v2/org/victim/manifests/'"$victim"$' HTTP/1.1\r\nHost: '"$DST_ADDR"$'\r\nX-Smuggled: 1'
jq -c --arg t "$injected" '.mediaType = $t' "$L/blobs/sha256/${good#sha256:}" >"$IM_WORK/evil-manifest.json"
start_hostile src "$L" v1 --manifest "$IM_WORK/evil-manifest.json" --content-type application/json

cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true, "username": "alice", "password": "alicepass"}}
JSON
cat >"$IM_WORK/images.json" <<JSON
{"$SRC_ADDR/team/app:v1": "$DST_ADDR/org/app:v1"}
JSON
run_im inject --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "" --digest-cache "" --retries 0 \
  --report "$IM_WORK/report.json" --write-failed "$IM_WORK/failed.json"
cat "$IM_WORK/inject.out"
assert_eq "$(raw_digest "$DST_ADDR/org/victim:latest")" "$victim" "org/victim:latest still exists: no smuggled DELETE"
assert_eq "$rc" 1 "the image with a forged media type fails (exit 1)"
assert_absent "$DST_ADDR/org/app:v1" "nothing was pushed under the forged media type"
grep -q 'media type' "$IM_WORK/inject.out" || fail "the failure does not say the media type is the problem"
assert_eq "$(jq -r '.images[0].status' "$IM_WORK/report.json")" failed "the report says failed"
assert_eq "$(jq -r 'keys[0]' "$IM_WORK/failed.json")" "$SRC_ADDR/team/app:v1" "the failed list names the image"

# The same forged type in an OCI layout's index.json (a tampered layout carried between sites).
LO=$IM_WORK/tampered
cp -r "$L" "$LO"
jq --arg t "$injected" '(.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="v1") | .mediaType) = $t' \
  "$L/index.json" >"$LO/index.json"
cat >"$IM_WORK/images-layout.json" <<JSON
{"oci:$LO:v1": "$DST_ADDR/org/fromlayout:v1"}
JSON
run_im layout --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-layout.json" --log "" --digest-cache "" --retries 0
cat "$IM_WORK/layout.out"
assert_eq "$(raw_digest "$DST_ADDR/org/victim:latest")" "$victim" "org/victim:latest still exists after the tampered layout"
assert_eq "$rc" 1 "the tampered layout's image fails (exit 1)"
assert_absent "$DST_ADDR/org/fromlayout:v1" "nothing was pushed from the tampered layout"

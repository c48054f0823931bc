#!/usr/bin/env bash
# Blob downloads redirected to another host (docker-registry's `redirect` storage middleware, as
# S3/CDN-backed registries do) are followed, and the Authorization header never travels to that
# other host; the copy is digest-identical.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

# The storage host: another loopback address, serving the source registry's storage directory.
port=$(free_port)
start_registry src token "REGISTRY_MIDDLEWARE_STORAGE=[{name: redirect, options: {baseurl: \"http://127.0.0.2:$port/\"}}]"
python3 "$IM_REPO_ROOT/tests/tools/header_recorder.py" 127.0.0.2 "$port" "$SRC_DIR/data" "$IM_WORK/cdn.log" &
im_on_exit kill $!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.2:$port/" && break; sleep 0.1; done
start_registry dst plain

make_layout "$IM_WORK/layout" v1 --layers 2 --layer-size 300000 >/dev/null
seed "$IM_WORK/layout" v1 "$SRC_ADDR/ns/app:1"
: >"$IM_WORK/cdn.log" # forget skopeo's own downloads during seeding
cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
echo "{\"$SRC_ADDR/ns/app:1\": \"$DST_ADDR/ns/app\"}" >"$IM_WORK/images.json"
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "" --no-encrypt-auth >"$IM_WORK/out" 2>&1 || rc=$?
cat "$IM_WORK/out"
assert_eq "$rc" 0 "copy through redirected blob downloads exits 0"
redirects=$(grep -c '"GET /v2/ns/app/blobs/sha256:[0-9a-f]* HTTP/1.1" 307' "$SRC_LOG" || true)
[ "$redirects" -ge 3 ] || fail "the registry did not redirect blob downloads ($redirects)"
pass "the source redirected $redirects blob downloads to 127.0.0.2"
downloads=$(grep -c '^GET .*/data authorization=' "$IM_WORK/cdn.log" || true)
[ "$downloads" -ge 3 ] || fail "the storage host saw $downloads downloads"
assert_eq "$(grep -c 'authorization=yes' "$IM_WORK/cdn.log" || true)" 0 "no Authorization header reached the storage host ($downloads downloads)"
assert_eq "$(raw_digest "$DST_ADDR/ns/app:1" none)" "$(raw_digest "$SRC_ADDR/ns/app:1")" "digest preserved"
echo "test_redirect: all checks passed"

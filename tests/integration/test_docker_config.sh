#!/usr/bin/env bash
# Credentials from Docker's config.json: auth.json names the registries without any credentials, and
# the htpasswd source's password (alice) comes from $DOCKER_CONFIG/config.json, once as a base64
# "auths" entry and once through a credHelpers helper (run once for the whole run, asked only about
# the source). A failing helper ends the run naming the helper and the file. The password is never
# in any output. (lib.sh points DOCKER_CONFIG at an empty config for skopeo; each image-migrator run
# below gets its own.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

# run_im NAME ARGS...: runs image-migrator (stdout+stderr to $IM_WORK/NAME.out); sets rc.
run_im() {
  local name=$1
  shift
  rc=0
  im_run "$IM_BIN" "$@" >"$IM_WORK/$name.out" 2>&1 || rc=$?
}

# docker_config NAME JSON: writes $IM_WORK/NAME/config.json.
docker_config() {
  mkdir -p "$IM_WORK/$1"
  printf '%s\n' "$2" >"$IM_WORK/$1/config.json"
}

L=$IM_WORK/layout
make_layout "$L" multi --layers 2 --layer-size 100000 --platforms linux/amd64,linux/arm64 --seed dc-multi >/dev/null
make_layout "$L" single --layers 1 --layer-size 50000 --seed dc-single >/dev/null
start_registry src htpasswd
start_registry dst plain
seed "$L" multi "$SRC_ADDR/ns/app:v1"
seed "$L" single "$SRC_ADDR/ns/tool:1.0"

# No username or password anywhere in auth.json.
cat >"$IM_WORK/auth.json" <<JSON
{"$DST_ADDR": {"insecure": true}, "$SRC_ADDR": {"insecure": true}}
JSON

# ---------------------------------------------------------------- 0. without Docker credentials
# lib.sh's empty config.json: the source refuses anonymous pulls, so the checks below mean something.
echo "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/ns/none\"}" >"$IM_WORK/images-none.json"
run_im none --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-none.json" -r 0 --log ""
cat "$IM_WORK/none.out"
[ "$rc" -ne 0 ] || fail "no Docker credentials: the copy from the htpasswd source succeeded anonymously"
pass "no Docker credentials: the copy fails (exit code $rc)"

# ---------------------------------------------------------------- 1. auths with base64 "auth"
docker_config dc-auths "{\"auths\": {\"$SRC_ADDR\": {\"auth\": \"$(printf alice:alicepass | base64 -w0)\"}}}"
echo "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/ns/app-auths\"}" >"$IM_WORK/images-auths.json"
DOCKER_CONFIG=$IM_WORK/dc-auths run_im auths --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-auths.json" \
  --log "$IM_WORK/auths.log"
cat "$IM_WORK/auths.out"
assert_eq "$rc" 0 "auths: exit code 0 with alice's password from config.json only"
same_digest "$SRC_ADDR/ns/app:v1" "$DST_ADDR/ns/app-auths:v1" "auths: 2-platform index digest preserved"
pull_all_platforms "$DST_ADDR/ns/app-auths:v1"
pass "auths: both platforms pull back with verified blobs"
no_leak alicepass alice "$IM_WORK/auths.out" "$IM_WORK/auths.log"
pass "auths: no password in the output or the log file"

# ---------------------------------------------------------------- 2. credHelpers
# docker-credential-test logs every run; it knows only the source (anything else: "not found", as
# docker's helpers say it).
mkdir -p "$IM_WORK/helper-bin"
cat >"$IM_WORK/helper-bin/docker-credential-test" <<SH
#!/bin/sh
read -r url
printf '%s %s\n' "\$1" "\$url" >>"$IM_WORK/helper.calls"
if [ "\$url" = "$SRC_ADDR" ]; then
  printf '{"ServerURL": "%s", "Username": "alice", "Secret": "alicepass"}\n' "\$url"
else
  echo "credentials not found in native keychain"
  exit 1
fi
SH
chmod +x "$IM_WORK/helper-bin/docker-credential-test"
: >"$IM_WORK/helper.calls"
docker_config dc-helper "{\"credHelpers\": {\"$SRC_ADDR\": \"test\"}}"
# Two repositories and three tasks: still one run of the helper.
cat >"$IM_WORK/images-helper.json" <<JSON
{"$SRC_ADDR/ns/app:v1": ["$DST_ADDR/ns/app-helper", "$DST_ADDR/other/app-helper"],
 "$SRC_ADDR/ns/tool:1.0": "$DST_ADDR/ns/tool-helper"}
JSON
PATH="$IM_WORK/helper-bin:$PATH" DOCKER_CONFIG=$IM_WORK/dc-helper run_im helper --auth "$IM_WORK/auth.json" \
  --images "$IM_WORK/images-helper.json" --log "$IM_WORK/helper.log"
cat "$IM_WORK/helper.out"
assert_eq "$rc" 0 "credHelpers: exit code 0 with alice's password from docker-credential-test"
same_digest "$SRC_ADDR/ns/app:v1" "$DST_ADDR/ns/app-helper:v1" "credHelpers: ns/app-helper digest preserved"
same_digest "$SRC_ADDR/ns/app:v1" "$DST_ADDR/other/app-helper:v1" "credHelpers: other/app-helper digest preserved"
same_digest "$SRC_ADDR/ns/tool:1.0" "$DST_ADDR/ns/tool-helper:1.0" "credHelpers: ns/tool-helper digest preserved"
assert_eq "$(cat "$IM_WORK/helper.calls")" "get $SRC_ADDR" \
  "credHelpers: the helper ran once, as 'get' with the source's host:port on stdin"
no_leak alicepass alice "$IM_WORK/helper.out" "$IM_WORK/helper.log"
pass "credHelpers: no password in the output or the log file"

# ---------------------------------------------------------------- 3. a failing helper
# It prints something that looks like an answer and exits 1: a configuration error (exit code 2)
# naming the helper and the file, without the output, and nothing is copied.
cat >"$IM_WORK/helper-bin/docker-credential-broken" <<'SH'
#!/bin/sh
cat >/dev/null
echo '{"Username": "alice", "Secret": "alicepass"}'
exit 1
SH
chmod +x "$IM_WORK/helper-bin/docker-credential-broken"
docker_config dc-broken "{\"credHelpers\": {\"$SRC_ADDR\": \"broken\"}}"
echo "{\"$SRC_ADDR/ns/app:v1\": \"$DST_ADDR/ns/app-broken\"}" >"$IM_WORK/images-broken.json"
PATH="$IM_WORK/helper-bin:$PATH" DOCKER_CONFIG=$IM_WORK/dc-broken run_im broken --auth "$IM_WORK/auth.json" \
  --images "$IM_WORK/images-broken.json" -r 0 --log ""
cat "$IM_WORK/broken.out"
assert_eq "$rc" 2 "failing helper: exit code 2 (configuration error)"
grep -qF "docker-credential-broken" "$IM_WORK/broken.out" || fail "failing helper: the message does not name the helper"
grep -qF "$IM_WORK/dc-broken/config.json" "$IM_WORK/broken.out" || fail "failing helper: the message does not name the file"
pass "failing helper: the message names docker-credential-broken and the config file"
no_leak alicepass alice "$IM_WORK/broken.out"
pass "failing helper: its output (with the password) is not shown"
if raw_digest "$DST_ADDR/ns/app-broken:v1" >/dev/null 2>&1; then
  fail "failing helper: ns/app-broken was copied"
fi
pass "failing helper: nothing copied"

echo "test_docker_config: all checks passed"

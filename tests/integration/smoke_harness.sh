#!/usr/bin/env bash
# smoke_harness.sh - proves the integration-test harness (lib.sh, token_server,
# make-oci-layout.sh) works, using only skopeo and real docker-registry
# processes. Prints one PASS/FAIL line per check; exits non-zero on failure.
#
#   TOKEN_SERVER_BIN=build/tests/tools/token_server bash tests/integration/smoke_harness.sh
#
# Runs the checks in a child process with its own TMPDIR, then verifies that
# the child left no process and no temp files behind (also after a failure).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${1:-}" != --inner ] && [ "${1:-}" != --inner-fail ]; then
  start=$(date +%s)
  base=$(mktemp -d "${TMPDIR:-/tmp}/im-smoke.XXXXXX")
  trap 'rm -rf "$base"' EXIT
  rc=0
  TMPDIR=$base bash "$0" --inner || rc=$?
  left=$(pgrep -a -f "$base" || true)
  if [ -n "$left" ]; then
    echo "FAIL: [harness] processes left behind:" >&2
    echo "$left" >&2
    rc=1
  else
    echo "PASS: [harness] no docker-registry/token_server process left behind"
  fi
  if [ -n "$(ls -A "$base")" ] && [ "${IM_KEEP:-0}" != 1 ]; then
    echo "FAIL: [harness] temp files left behind: $(ls -A "$base")" >&2
    rc=1
  else
    echo "PASS: [harness] work directory removed"
  fi

  # A failing test must clean up too.
  if TMPDIR=$base IM_KEEP=0 bash "$0" --inner-fail >"$base/fail.out" 2>&1; then
    echo "FAIL: [harness] a failing test exited with status 0" >&2
    rc=1
  elif [ -n "$(pgrep -a -f "$base" || true)" ]; then
    echo "FAIL: [harness] a failing test left processes behind" >&2
    rc=1
  elif [ -n "$(ls -A "$base" | grep -v '^fail.out$' || true)" ]; then
    echo "FAIL: [harness] a failing test left files behind" >&2
    rc=1
  else
    echo "PASS: [harness] a failing test cleans up its processes and files"
  fi

  secs=$(($(date +%s) - start))
  if [ "$rc" == 0 ]; then
    echo "smoke harness: all checks passed in ${secs}s"
  else
    echo "smoke harness: FAILED after ${secs}s" >&2
  fi
  exit "$rc"
fi

# shellcheck source=lib.sh
source "$HERE/lib.sh"
im_setup

if [ "$1" == --inner-fail ]; then
  start_registry doomed token
  start_registry doomed2 tls
  fail "[harness] deliberate failure with registries running"
fi

OCI_MT=application/vnd.oci.image.manifest.v1+json
DOCKER_MT=application/vnd.docker.distribution.manifest.v2+json

# Layouts shared by every mode (the bytes do not depend on the registry).
L=$IM_WORK/layout
make_layout "$L" single --layers 2 --layer-size 65536 --shared-base "$IM_WORK/base.tar.gz" >/dev/null
make_layout "$L" multi --layers 2 --layer-size 65536 --platforms linux/amd64,linux/arm64 \
  --shared-base "$IM_WORK/base.tar.gz" >/dev/null
single_digest=$(layout_digest "$L" single)
multi_digest=$(layout_digest "$L" multi)
mt=$(jq -r '.mediaType' "$L/blobs/sha256/${multi_digest#sha256:}")
assert_eq "$mt" application/vnd.oci.image.index.v1+json "[layout] multi-platform tag points at an OCI index"
again=$(make_layout "$IM_WORK/layout2" single --layers 2 --layer-size 65536 --shared-base "$IM_WORK/base.tar.gz")
assert_eq "$again" "$single_digest" "[layout] generation is reproducible"

# layers_and_diff_ids LAYOUT [TAG]: layer digests + config diff_ids of a single-arch image.
layers_and_diff_ids() {
  local m c
  m=$1/blobs/sha256/$(layout_digest "$1" "${2:-t}" | cut -d: -f2)
  c=$1/blobs/sha256/$(jq -r '.config.digest' "$m" | cut -d: -f2)
  jq -c '[.layers[].digest]' "$m"
  jq -c '.rootfs.diff_ids' "$c"
}

# media_type REF [CREDS]
media_type() { raw_manifest "$@" | jq -r '.mediaType'; }

# expect_failure MSG CMD...: CMD must fail.
expect_failure() {
  local msg=$1
  shift
  if "$@" >/dev/null 2>&1; then fail "$msg (command succeeded)"; fi
  pass "$msg"
}

check_mode() {
  local mode=$1 name=r_${1//-/_}
  local N
  N=$(_im_upper "$name")
  start_registry "$name" "$mode"
  local addr_var=${N}_ADDR
  local A=${!addr_var}
  pass "[$mode] registry up at $A"

  seed "$L" single "$A/smoke/single:v1"
  assert_eq "$(raw_digest "$A/smoke/single:v1")" "$single_digest" "[$mode] seeded OCI image: raw digest == layout manifest digest"
  assert_eq "$(media_type "$A/smoke/single:v1")" "$OCI_MT" "[$mode] seeded OCI image keeps its OCI media type"

  seed "$L" multi "$A/smoke/multi:v1"
  assert_eq "$(raw_digest "$A/smoke/multi:v1")" "$multi_digest" "[$mode] seeded 2-platform OCI index: raw digest == layout index digest"

  seed "$L" single "$A/smoke/docker:v1" --format v2s2
  assert_eq "$(media_type "$A/smoke/docker:v1")" "$DOCKER_MT" "[$mode] seeded with --format v2s2: Docker schema 2 manifest"

  local ref
  for ref in smoke/single:v1 smoke/multi:v1; do
    pull_all_platforms "$A/$ref"
    assert_eq "$(layout_digest "$PULLED_DIR" t)" "$(raw_digest "$A/$ref")" "[$mode] pulled every platform of $ref back (blob digests verified, same manifest digest)"
  done
  # Converting to v2s2 rewrites the config blob, and skopeo stores the pulled
  # Docker manifest as OCI, so compare the layer blobs and the diff_ids.
  pull_all_platforms "$A/smoke/docker:v1"
  assert_eq "$(layers_and_diff_ids "$PULLED_DIR")" "$(layers_and_diff_ids "$L" single)" \
    "[$mode] pulled smoke/docker:v1 back: same layer blobs and diff_ids as the layout"
  local n
  n=$(jq -r '.manifests | length' "$L/blobs/sha256/${multi_digest#sha256:}")
  assert_eq "$(im_inspect "$A/smoke/multi:v1" --raw | jq -r '.manifests | length')" "$n" "[$mode] index in the registry lists $n platforms"

  case "$mode" in
    plain)
      restart_registry "$name"
      assert_eq "$(raw_digest "$A/smoke/single:v1")" "$single_digest" "[$mode] restart_registry keeps port and data"
      ;;
    htpasswd | tls-htpasswd)
      expect_failure "[$mode] wrong password is rejected" raw_digest "$A/smoke/single:v1" alice:wrong
      expect_failure "[$mode] anonymous access is rejected" raw_digest "$A/smoke/single:v1" none
      assert_eq "$(raw_digest "$A/smoke/single:v1" bob:bobpass)" "$single_digest" "[$mode] second user bob can pull"
      ;;
    token | tls-token)
      local log_var=${N}_TOKEN_LOG realm_var=${N}_REALM
      local tlog=${!log_var} realm=${!realm_var}
      [ -s "$tlog" ] || fail "[$mode] token log is empty"
      pass "[$mode] token server logged $(wc -l <"$tlog") token requests"
      if grep -q alicepass "$tlog"; then fail "[$mode] password found in token log"; fi
      pass "[$mode] token log never contains passwords"

      expect_failure "[$mode] wrong password is rejected" raw_digest "$A/smoke/single:v1" alice:wrong
      expect_failure "[$mode] anonymous pull is rejected (no --anonymous-pull)" raw_digest "$A/smoke/single:v1" none
      assert_eq "$(raw_digest "$A/smoke/single:v1" reader:readerpass)" "$single_digest" "[$mode] pull-only user reader can pull"
      if SEED_CREDS=reader:readerpass seed "$L" single "$A/smoke/reader:v1" 2>/dev/null; then
        fail "[$mode] pull-only user reader could push"
      fi
      pass "[$mode] pull-only user reader cannot push"
      expect_failure "[$mode] nothing was pushed by reader" raw_digest "$A/smoke/reader:v1"
      assert_eq "$(token_requests "$name" reader 200)" "$(token_requests "$name" reader)" "[$mode] reader got tokens (with narrowed scope), never an error"

      # A token straight from the server: claims, accepted now, rejected after the TTL.
      local curl_ca=() url_var=${N}_URL tok claims body
      case "$mode" in tls-*) curl_ca=(--cacert "$IM_WORK/$name/certs/ca.crt") ;; esac
      body=$(curl -sf "${curl_ca[@]}" -u alice:alicepass "$realm?service=test-registry&scope=repository:smoke/single:pull,push")
      tok=$(jq -r .token <<<"$body")
      claims=$(cut -d. -f2 <<<"$tok" | tr '_-' '/+' | { read -r s; while [ $((${#s} % 4)) -ne 0 ]; do s="$s="; done; base64 -d <<<"$s"; })
      assert_eq "$(jq -c '[.iss, .aud, .sub, .access]' <<<"$claims")" \
        '["test-issuer","test-registry","alice",[{"actions":["pull","push"],"name":"smoke/single","type":"repository"}]]' \
        "[$mode] JWT claims (iss, aud, sub, access)"
      assert_eq "$(jq -c '[.expires_in, (.token == .access_token)]' <<<"$body")" '[2,true]' "[$mode] expires_in is TOKEN_TTL"
      manifest_status() {
        curl -s -o /dev/null -w '%{http_code}' "${curl_ca[@]}" -H "Authorization: Bearer $1" \
          -H "Accept: $OCI_MT" "${!url_var}/v2/smoke/single/manifests/v1"
      }
      assert_eq "$(manifest_status "$tok")" 200 "[$mode] registry accepts the server's bearer token"

      # Tokens expire: with TOKEN_TTL=2 a request 3 s later must fetch a new one.
      local before after
      before=$(token_requests "$name" alice 200)
      raw_digest "$A/smoke/single:v1" >/dev/null
      sleep 3
      assert_eq "$(manifest_status "$tok")" 401 "[$mode] registry rejects the token after TOKEN_TTL"
      raw_digest "$A/smoke/single:v1" >/dev/null
      after=$(token_requests "$name" alice 200)
      [ "$after" -gt "$before" ] || fail "[$mode] token log did not grow ($before -> $after)"
      pass "[$mode] new token fetched after TTL expiry (alice tokens $before -> $after)"
      ;;
    tls | tls-token)
      ;;
  esac

  if [[ "$mode" == tls* ]]; then
    expect_failure "[$mode] certificate is verified (fails without the test CA)" \
      im_skopeo inspect --raw --tls-verify=true --cert-dir "$IM_WORK/.tmp" "docker://$A/smoke/single:v1"
  else
    expect_failure "[$mode] registry speaks plain HTTP (TLS verify fails)" \
      im_skopeo inspect --raw --tls-verify=true "docker://$A/smoke/single:v1"
  fi
  stop_registry "$name"
  pass "[$mode] registry stopped"
}

check_mode plain
check_mode htpasswd
TOKEN_TTL=2 check_mode token
check_mode tls
check_mode tls-htpasswd
TOKEN_TTL=2 check_mode tls-token
echo "smoke harness: all modes passed"

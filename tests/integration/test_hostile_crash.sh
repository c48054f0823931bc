#!/usr/bin/env bash
# Security, class 4 (issue 17): a remote party cannot crash the run. Deeply nested JSON (120 KB of
# '[') from a registry (referrers, an index filtered by --platforms, a tag list, a manifest) or from
# an API server overflowed the stack (exit 139); wrongly typed fields ("schemaVersion": {}, a pull
# secret's "username": 1) escaped as "internal error", exit 2, with no report and no failed list.
# Now each fails the image (or the listing) with one clear line, exit 1, and --report and
# --write-failed are written. Destination: a real docker-registry with htpasswd.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry dst htpasswd
L=$IM_WORK/layout
make_layout "$L" v1 --layers 1 --layer-size 2048 --seed crash >/dev/null
good=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="v1") | .digest' "$L/index.json")

# run_hostile NAME RULE-SOURCE [hostile options...] -- [image-migrator options...]: one run against a
# fresh hostile source; sets rc, writes NAME.out, NAME-report.json, NAME-failed.json.
run_hostile() {
  local name=$1 source=$2 hostile=() extra=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do hostile+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  extra=("$@")
  start_hostile "$name" "$L" v1 "${hostile[@]}"
  local addr_var
  addr_var=$(_im_upper "$name")_ADDR
  cat >"$IM_WORK/$name-auth.json" <<JSON
{"${!addr_var}": {"insecure": true}, "$DST_ADDR": {"insecure": true, "username": "alice", "password": "alicepass"}}
JSON
  cat >"$IM_WORK/$name-images.json" <<JSON
{"${!addr_var}/$source": "$DST_ADDR/org/$name"}
JSON
  run_im "$name" --auth "$IM_WORK/$name-auth.json" --images "$IM_WORK/$name-images.json" --log "" --digest-cache "" \
    --retries 0 --report "$IM_WORK/$name-report.json" --write-failed "$IM_WORK/$name-failed.json" "${extra[@]}"
  cat "$IM_WORK/$name.out"
}

# expect_failed NAME WHAT: exit 1 (not 139, not 2), the report and the failed list written, one FAILED line.
expect_failed() {
  assert_eq "$rc" 1 "$2: exit 1 (a failed image), not a crash"
  [ -s "$IM_WORK/$1-report.json" ] || fail "$2: no --report written"
  [ -s "$IM_WORK/$1-failed.json" ] || fail "$2: no --write-failed written"
  grep -q 'internal error' "$IM_WORK/$1.out" && fail "$2: an internal error escaped"
  pass "$2: report and failed list written"
}

run_hostile referrers "team/app:v1" --deep referrers
expect_failed referrers "deep JSON from the referrers API"
assert_eq "$(jq -r '.images[0].status' "$IM_WORK/referrers-report.json")" failed "deep referrers: the image is reported failed"
grep -q 'FAILED.*referrers' "$IM_WORK/referrers.out" || fail "deep referrers: the FAILED line does not say referrers"

run_hostile platforms "team/app:v1" --deep index -- --platforms linux/amd64
expect_failed platforms "deep JSON as an index filtered by --platforms"

run_hostile manifest "team/app:v1" --deep manifests
expect_failed manifest "deep JSON as a manifest"

run_hostile tags "team/app" --deep tags
assert_eq "$rc" 1 "deep JSON as a tag list: exit 1 (the rule fails), not a crash"
grep -q 'tasks generate failed' "$IM_WORK/tags.out" || fail "deep tags: no summary line"
[ -s "$IM_WORK/tags-report.json" ] || fail "deep tags: no report"

# Wrongly typed fields in a manifest.
jq -c '.schemaVersion = {} | .config.platform = {"os": 1}' "$L/blobs/sha256/${good#sha256:}" >"$IM_WORK/typed.json"
run_hostile typed "team/app:v1" --manifest "$IM_WORK/typed.json" --content-type application/vnd.oci.image.manifest.v1+json
expect_failed typed "\"schemaVersion\": {} in a manifest"
jq -c '.layers[0].size = "12" ' "$L/blobs/sha256/${good#sha256:}" >"$IM_WORK/typed2.json"
run_hostile typed2 "team/app:v1" --manifest "$IM_WORK/typed2.json" --content-type application/vnd.oci.image.manifest.v1+json
expect_failed typed2 "a layer size as a string"
grep -q 'size' "$IM_WORK/typed2.out" || fail "the wrong size type is not named"

# Bytes that are not UTF-8 in a header that reaches an error message (a 401's challenge): the
# report is still written (its JSON must stay valid UTF-8).
run_hostile rawheader "team/app:v1" --raw-challenge '\x80\xffBearer realm=\x9b'
expect_failed rawheader "bytes that are not UTF-8 in a WWW-Authenticate challenge"
jq -e '.images[0].error | test("\\\\x80")' "$IM_WORK/rawheader-report.json" >/dev/null ||
  fail "the report does not show the raw byte escaped"

# A hostile API server: deep JSON, and a pull secret whose username is a number.
start_hostile_kube deepkube deep
rc=0
im_run "$IM_BIN" config -k "$DEEPKUBE_KUBECONFIG" -t swr.example.com/org -o "$IM_WORK/deep-images.json" \
  >"$IM_WORK/deepkube.out" 2>&1 || rc=$?
cat "$IM_WORK/deepkube.out"
[ "$rc" == 1 ] || [ "$rc" == 2 ] || fail "deep JSON from the API server: exit $rc (a crash?)"
grep -qi 'json\|nested' "$IM_WORK/deepkube.out" || fail "deep JSON from the API server: the error does not say what was wrong"
pass "deep JSON from the API server: a clear error, exit $rc"

start_hostile_kube typedkube secret-types
rc=0
im_run "$IM_BIN" config -k "$TYPEDKUBE_KUBECONFIG" -t swr.example.com/org -o "$IM_WORK/typed-images.json" \
  --with-pull-secrets "$IM_WORK/typed-auth.json" >"$IM_WORK/typedkube.out" 2>&1 || rc=$?
cat "$IM_WORK/typedkube.out"
grep -q 'internal error' "$IM_WORK/typedkube.out" && fail "a pull secret's \"username\": 1 escaped as an internal error"
[ "$rc" == 0 ] || [ "$rc" == 1 ] || fail "a pull secret's \"username\": 1: exit $rc"
[ -s "$IM_WORK/typed-images.json" ] || fail "a pull secret's \"username\": 1: no images file written"
pass "a pull secret with a wrongly typed username: the images file is written (exit $rc)"

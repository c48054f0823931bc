#!/usr/bin/env bash
# tests/kubeapi/smoke_kubectl.sh - prove kube_api_server is faithful enough by
# running the real kubectl (1.32) against it: discovery, chunked and unchunked
# lists over every workload kind with token / tokenFile / client-cert / inline-data
# kubeconfigs, namespaced lists, Table output, single GETs, 401, 403, 410 on an
# expired continue token, a disabled batch/v1, aggregated discovery.
#
# Usage: tests/kubeapi/smoke_kubectl.sh
# Environment: KUBE_API_SERVER_BIN (see kube_lib.sh), KUBECTL (default kubectl),
#   KUBE_FIXTURES (default <repo>/tests/data/k8s-objects), KUBE_KEEP=1 keeps
#   the work directory (certificates, kubeconfigs, server logs).
# Prints one line per check; exits 1 if any check failed.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=kube_lib.sh
source "$HERE/kube_lib.sh"

FIX=${KUBE_FIXTURES:-$KUBE_LIB_REPO_ROOT/tests/data/k8s-objects}
KUBECTL=${KUBECTL:-kubectl}
GEN=1200
START=$(date +%s)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kubeapi-smoke.XXXXXX")
on_exit() {
  kube_cleanup
  if [ "${KUBE_KEEP:-}" = 1 ]; then
    echo "work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap on_exit EXIT

FAILED=0
ok() { printf 'ok   %s\n' "$*"; }
bad() {
  printf 'FAIL %s\n' "$*"
  FAILED=$((FAILED + 1))
}
check() { # check DESC CONDITION-COMMAND...
  local desc=$1
  shift
  if "$@"; then ok "$desc"; else bad "$desc"; fi
}

# kc KUBECONFIG ARGS...: kubectl with a private HOME, cache and kubeconfig.
kc() {
  local cfg=$1
  shift
  env -u KUBECONFIG HOME="$WORK" timeout 60 "$KUBECTL" --kubeconfig "$cfg" \
    --cache-dir "$WORK/cache" "$@"
}

# log_since FILE LINE: lines of FILE after line number LINE.
log_lines() { wc -l <"$1" | tr -d ' '; }
log_since() { tail -n "+$(($2 + 1))" "$1"; }

[ -d "$FIX" ] || {
  echo "fixtures not found: $FIX (set KUBE_FIXTURES)" >&2
  exit 2
}
command -v "$KUBECTL" >/dev/null || {
  echo "kubectl not found" >&2
  exit 2
}

kube_setup "$WORK/kube"

# ------------------------------------------------------------------ servers
start_kube_api MAIN --objects "$FIX" --objects "$FIX/real" --generate "$GEN"
start_kube_api FORBID --objects "$FIX" --objects "$FIX/real" --generate 20 --forbid daemonsets
start_kube_api EXPIRE --objects "$FIX" --objects "$FIX/real" --generate 200 --expire-continue 2
start_kube_api NOV1 --objects "$FIX" --objects "$FIX/real" --disable-version batch/v1
start_kube_api AGG --objects "$FIX" --objects "$FIX/real" --generate 30 --aggregated-discovery
ok "5 servers up: $MAIN_URL $FORBID_URL $EXPIRE_URL $NOV1_URL $AGG_URL"

# What the servers hold: every fixture object, unique by kind/namespace/name
# (real/po.json and real/po_init.json are both default/nginx: one Pod), plus
# the generated Deployments.
EXPECTED=$(jq -n --argjson gen "$GEN" '
  [inputs | if (.kind | type) == "string" and (.kind | endswith("List")) and (.items | type) == "array"
            then .items[] else . end
   | {kind, ns: (.metadata.namespace // "default"), name: .metadata.name}]
  | unique | group_by(.kind) | map({key: .[0].kind, value: length}) | from_entries
  | .Deployment += $gen' "$FIX"/*.json "$FIX"/real/*.json)
EXPECTED_TOTAL=$(jq 'add' <<<"$EXPECTED")
KINDS=pods,deployments,statefulsets,daemonsets,replicasets,jobs,cronjobs,replicationcontrollers,podtemplates

# counts JSON: {"Kind": n, ...} of a kubectl List.
counts() { jq -c 'reduce .items[] as $i ({}; .[$i.kind] += 1)'; }

# The generated Deployments' images all appear, and their init containers'.
images_ok() { # FILE N
  jq -e --argjson n "$2" '
    ([.items[] | select(.kind == "Deployment") | .spec.template.spec.containers[]?.image]) as $imgs
    | ([.items[] | select(.kind == "Deployment") | .spec.template.spec.initContainers[]?.image
        | select(startswith("registry.example.com/base/"))] | unique) as $init
    | ([range(0; $n) | "registry.example.com/team-\(. % 7)/app-\(.):1.\(. % 5)"] - $imgs | length) == 0
      and $init == ["registry.example.com/base/init-0:v1", "registry.example.com/base/init-1:v1",
                    "registry.example.com/base/init-2:v1"]' "$1" >/dev/null
}

# ------------------------------------------------------------------ discovery
out=$(kc "$MAIN_TOKEN_KUBECONFIG" api-versions 2>&1) || true
check "kubectl api-versions: $(tr '\n' ' ' <<<"$out")" \
  test "$(tr '\n' ' ' <<<"$out")" = "apps/v1 batch/v1 batch/v1beta1 v1 "
disc=$(grep -c -E '^GET /(api|apis)(/[a-z./0-9]+)?\?timeout=' "$MAIN_LOG" || true)
check "kubectl discovered with classic documents (/api, /apis, then each group version: $disc requests)" \
  grep -q '^GET /apis/apps/v1?timeout=32s auth=token 200' "$MAIN_LOG"
vers=$(kc "$MAIN_TOKEN_KUBECONFIG" version -o json 2>/dev/null | jq -r '.clientVersion.gitVersion + " / server " + .serverVersion.gitVersion') || true
check "kubectl version: client $vers (the gcloud kubectl dispatcher picks kubectl.1.32 from /version)" \
  grep -q '^v1\.32\..* / server v1\.32\.0$' <<<"$vers"

# ------------------------------------------------------------------ full lists
for mode in token tokenfile cert data; do
  var=MAIN_${mode^^}_KUBECONFIG
  cfg=${!var}
  for chunk in 50 0; do
    before=$(log_lines "$MAIN_LOG")
    file=$WORK/list-$mode-$chunk.json
    if ! kc "$cfg" get "$KINDS" -A -o json --chunk-size="$chunk" >"$file" 2>"$file.err"; then
      bad "$mode kubeconfig, --chunk-size=$chunk: kubectl failed: $(head -c 300 "$file.err")"
      continue
    fi
    got=$(counts <"$file")
    total=$(jq '.items | length' "$file")
    if [ "$(jq -S . <<<"$got")" = "$(jq -S . <<<"$EXPECTED")" ] && [ "$total" = "$EXPECTED_TOTAL" ]; then
      ok "$mode kubeconfig, --chunk-size=$chunk: $total items, per kind as loaded $got"
    else
      bad "$mode kubeconfig, --chunk-size=$chunk: got $got, expected $EXPECTED"
    fi
    check "$mode kubeconfig, --chunk-size=$chunk: all $GEN generated images and the 3 init images present" \
      images_ok "$file" "$GEN"
    reqs=$(log_since "$MAIN_LOG" "$before" | grep -c -E '^GET /apis/apps/v1/deployments[? ]' || true)
    conts=$(log_since "$MAIN_LOG" "$before" | grep -c '^GET /apis/apps/v1/deployments?continue=' || true)
    auths=$(log_since "$MAIN_LOG" "$before" | grep -v '^GET /version?timeout=5s' |
      sed -n 's/.* auth=\([^ ]*\) [0-9]*$/\1/p' | sort -u | tr '\n' ' ')
    if [ "$chunk" = 50 ]; then
      want=$(((GEN + 2 + 49) / 50))
      check "$mode kubeconfig, --chunk-size=50: deployments took $reqs pages ($conts with continue), auth=$auths" \
        test "$reqs" = "$want" -a "$conts" = "$((want - 1))"
    else
      check "$mode kubeconfig, --chunk-size=0: deployments in $reqs request without limit, auth=$auths" \
        test "$reqs" = 1 -a "$(log_since "$MAIN_LOG" "$before" | grep -c '^GET /apis/apps/v1/deployments auth=' || true)" = 1
    fi
  done
done

# ------------------------------------------------------------------ namespaced, table, get
file=$WORK/gen-1.json
if kc "$MAIN_TOKEN_KUBECONFIG" get deploy -n gen-1 -o json >"$file" 2>"$file.err"; then
  n=$(jq '.items | length' "$file")
  nss=$(jq -r '[.items[].metadata.namespace] | unique | join(",")' "$file")
  check "get deploy -n gen-1: $n items, namespaces: $nss" test "$n" = $((GEN / 5)) -a "$nss" = gen-1
else
  bad "get deploy -n gen-1 failed: $(cat "$file.err")"
fi
check "it asked /apis/apps/v1/namespaces/gen-1/deployments" \
  grep -q '^GET /apis/apps/v1/namespaces/gen-1/deployments?limit=500 auth=token 200' "$MAIN_LOG"

out=$(kc "$MAIN_TOKEN_KUBECONFIG" get deploy -n gen-2 2>&1) || true
check "get deploy -n gen-2 (server-side Table): header '$(head -1 <<<"$out" | tr -s ' ')', $(($(wc -l <<<"$out") - 1)) rows" \
  test "$(head -1 <<<"$out" | awk '{print $1, $2}')" = "NAME IMAGES" -a "$(wc -l <<<"$out")" = $((GEN / 5 + 1))

out=$(kc "$MAIN_CERT_KUBECONFIG" get pod -n default sleep -o json 2>&1) || true
check "get pod -n default sleep -o json: kind $(jq -r .kind <<<"$out" 2>/dev/null), images $(jq -c '[.spec.containers[].image] | unique' <<<"$out" 2>/dev/null)" \
  test "$(jq -r '.kind + " " + .metadata.name' <<<"$out" 2>/dev/null)" = "Pod sleep"

out=$(kc "$MAIN_CERT_KUBECONFIG" get pod -n default nope 2>&1) && rc=0 || rc=$?
check "get pod nope: rc=$rc, '$out'" grep -q 'Error from server (NotFound): pods "nope" not found' <<<"$out"

# ------------------------------------------------------------------ auth failures
kube_write_kubeconfig "$WORK/kube/wrong-token.kubeconfig" "$MAIN_URL" token wrong-token
before=$(log_lines "$MAIN_LOG")
out=$(kc "$WORK/kube/wrong-token.kubeconfig" get pods -A 2>&1) && rc=0 || rc=$?
check "wrong token: rc=$rc, '$out'" \
  test "$rc" != 0 -a "$out" = "error: You must be logged in to the server (Unauthorized)"
check "wrong token: the server logged auth=none 401 (and no token value)" \
  bash -c "grep -q ' auth=none 401$' <(tail -n +$((before + 1)) '$MAIN_LOG') && ! grep -q wrong-token '$MAIN_LOG'"

# Token rotation: the server re-reads MAIN.token at every request.
printf 'rotated-token-456\n' >"$MAIN_TOKEN_FILE"
kube_write_kubeconfig "$WORK/kube/rotated.kubeconfig" "$MAIN_URL" token rotated-token-456
out_old=$(kc "$MAIN_TOKEN_KUBECONFIG" get deploy -n gen-0 -o name 2>&1) && rc_old=0 || rc_old=$?
out_new=$(kc "$WORK/kube/rotated.kubeconfig" get deploy -n gen-0 -o name 2>&1) && rc_new=0 || rc_new=$?
out_tf=$(kc "$MAIN_TOKENFILE_KUBECONFIG" get deploy -n gen-0 -o name 2>&1) && rc_tf=0 || rc_tf=$?
check "token rotated in the --token-file: old token rc=$rc_old ('$out_old'), new token rc=$rc_new, tokenFile kubeconfig rc=$rc_tf" \
  test "$rc_old" != 0 -a "$rc_new" = 0 -a "$rc_tf" = 0 -a "$(wc -l <<<"$out_new")" = $((GEN / 5)) -a "$out_tf" = "$out_new"
printf '%s\n' "${KUBE_TOKEN-test-token-123}" >"$MAIN_TOKEN_FILE"

# ------------------------------------------------------------------ 403
out=$(kc "$FORBID_TOKEN_KUBECONFIG" get daemonsets -A 2>&1) && rc=0 || rc=$?
check "--forbid daemonsets: get daemonsets -A rc=$rc, '$out'" \
  test "$rc" != 0 -a "$out" = 'Error from server (Forbidden): daemonsets.apps is forbidden: User "token-user" cannot list resource "daemonsets" in API group "apps" at the cluster scope'
file=$WORK/forbid.json
if kc "$FORBID_TOKEN_KUBECONFIG" get "${KINDS/daemonsets,/}" -A -o json --chunk-size=50 >"$file" 2>"$file.err"; then
  got=$(counts <"$file")
  want=$(jq -c 'del(.DaemonSet) | .Deployment += (20 - '"$GEN"')' <<<"$EXPECTED")
  check "--forbid daemonsets: the other 8 kinds list fine: $got" \
    test "$(jq -S . <<<"$got")" = "$(jq -S . <<<"$want")"
else
  bad "--forbid daemonsets: other kinds failed: $(cat "$file.err")"
fi

# ------------------------------------------------------------------ 410
before=$(log_lines "$EXPIRE_LOG")
kc "$EXPIRE_TOKEN_KUBECONFIG" get deployments -A -o json --chunk-size=50 >"$WORK/expire.json" 2>"$WORK/expire.err" && rc=0 || rc=$?
printed=$(jq '.items | length' "$WORK/expire.json" 2>/dev/null || echo "no JSON")
check "--expire-continue 2: kubectl rc=$rc, stderr '$(cat "$WORK/expire.err")', stdout had a List of $printed items (the pages before the 410)" \
  test "$rc" != 0 -a "$(cat "$WORK/expire.err")" = "Error from server (Expired): The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
seq410=$(log_since "$EXPIRE_LOG" "$before" | grep '^GET /apis/apps/v1/deployments' |
  sed -E 's/^GET ([^?]*)\?(continue=[^&]*&)?.* ([0-9]+)$/\2\3/; s/continue=[^&]*&/continue,/' | tr '\n' ' ')
check "kubectl did not retry after the 410: deployments requests were: $seq410" \
  test "$seq410" = "200 continue,200 continue,410 "
out=$(kc "$EXPIRE_TOKEN_KUBECONFIG" get deployments -A -o json --chunk-size=50 2>&1 | jq '.items | length' 2>&1) || true
check "the 410 came once: the next chunked list has all $out deployments" test "$out" = 202

# ------------------------------------------------------------------ batch/v1 disabled
out=$(kc "$NOV1_TOKEN_KUBECONFIG" api-versions 2>&1 | tr '\n' ' ') || true
check "--disable-version batch/v1: api-versions '$out'" test "$out" = "apps/v1 batch/v1beta1 v1 "
file=$WORK/nov1.json
if kc "$NOV1_TOKEN_KUBECONFIG" get cronjobs.v1beta1.batch -A -o json >"$file" 2>"$file.err"; then
  check "--disable-version batch/v1: get cronjobs.v1beta1.batch -A: $(jq -c '[.items[] | .apiVersion + " " + .metadata.namespace + "/" + .metadata.name]' "$file")" \
    test "$(jq '[.items[] | select(.apiVersion == "batch/v1beta1")] | length' "$file")" = "$(jq '.CronJob' <<<"$EXPECTED")"
else
  bad "--disable-version batch/v1: get cronjobs.v1beta1.batch failed: $(cat "$file.err")"
fi
out=$(kc "$NOV1_TOKEN_KUBECONFIG" get cronjobs -A -o name 2>&1 | tr '\n' ' ') || true
check "--disable-version batch/v1: plain 'get cronjobs' resolves to v1beta1: $out" \
  grep -q 'cronjob.batch/hello' <<<"$out"
out=$(kc "$NOV1_TOKEN_KUBECONFIG" get --raw /apis/batch/v1 2>&1) && rc=0 || rc=$?
check "--disable-version batch/v1: /apis/batch/v1 rc=$rc '$out'" \
  test "$rc" != 0 -a "$out" = "Error from server (NotFound): the server could not find the requested resource"
out=$(kc "$NOV1_TOKEN_KUBECONFIG" get jobs -A 2>&1) && rc=0 || rc=$?
check "--disable-version batch/v1: get jobs rc=$rc '$out'" \
  test "$rc" != 0 -a "$out" = 'error: the server doesn'"'"'t have a resource type "jobs"'

# ------------------------------------------------------------------ aggregated discovery
file=$WORK/agg.json
if kc "$AGG_DATA_KUBECONFIG" get "$KINDS" -A -o json --chunk-size=7 >"$file" 2>"$file.err"; then
  got=$(counts <"$file")
  want=$(jq -c '.Deployment += (30 - '"$GEN"')' <<<"$EXPECTED")
  check "--aggregated-discovery: all kinds listed: $got" test "$(jq -S . <<<"$got")" = "$(jq -S . <<<"$want")"
else
  bad "--aggregated-discovery: kubectl failed: $(cat "$file.err")"
fi
gv=$(grep -c -E '^GET /(api/v1|apis/[a-z]+/v[0-9a-z]+)\?timeout=' "$AGG_LOG" || true)
check "--aggregated-discovery: kubectl took the APIGroupDiscoveryList (no per-group-version discovery: $gv requests)" \
  test "$gv" = 0 -a "$(grep -c -E '^GET /apis\?timeout=32s auth=cert:test-user 200' "$AGG_LOG")" -ge 1

# ------------------------------------------------------------------ odds and ends
openapi=$(cat "$MAIN_LOG" "$FORBID_LOG" "$EXPIRE_LOG" "$NOV1_LOG" "$AGG_LOG" | grep -c openapi || true)
check "kubectl never asked for /openapi/v2 or /openapi/v3 ($openapi requests)" test "$openapi" = 0
errs=$(cat "$WORK"/kube/*.stderr)
check "servers wrote nothing on stderr${errs:+: $errs}" test -z "$errs"

pids="$MAIN_PID $FORBID_PID $EXPIRE_PID $NOV1_PID $AGG_PID"
kube_cleanup
left=""
for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
check "all servers stopped (pids $pids)${left:+; still running:$left}" test -z "$left"

if [ "$FAILED" = 0 ]; then
  echo "PASS: all checks passed in $(($(date +%s) - START)) s"
else
  echo "FAIL: $FAILED check(s) failed ($(($(date +%s) - START)) s)"
  exit 1
fi

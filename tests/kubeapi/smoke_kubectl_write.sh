#!/usr/bin/env bash
# tests/kubeapi/smoke_kubectl_write.sh - the writes of kube_api_server against the real kubectl
# 1.32: create -f (201, 409 AlreadyExists, 404 for a missing namespace), replace with a stale
# resourceVersion (409), set image (strategic merge patch by container name), patch --type
# merge/json/strategic (a failed JSON patch test is 422), --dry-run=server, an immutable Job template
# and Pod spec (422), rollout status (waits for the simulated controller; a rollout that never
# becomes ready ends in "exceeded its progress deadline"), get --watch, and RBAC from real Role and
# binding objects (403 with kube-apiserver's message, resourceNames honoured).
#
# kubectl create/replace -f run with --validate=false: their client-side validation downloads the
# OpenAPI schema, which this server does not serve (404; smoke_kubectl.sh checks kubectl never asks
# for it otherwise).
#
# Usage: tests/kubeapi/smoke_kubectl_write.sh   (environment as smoke_kubectl.sh)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=kube_lib.sh
source "$HERE/kube_lib.sh"
KUBECTL=${KUBECTL:-kubectl}
START=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kubeapi-write.XXXXXX")
on_exit() {
  kube_cleanup
  if [ "${KUBE_KEEP:-}" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap on_exit EXIT
FAILED=0
ok() { printf 'ok   %s\n' "$*"; }
bad() {
  printf 'FAIL %s\n' "$*"
  FAILED=$((FAILED + 1))
}
check() {
  local desc=$1
  shift
  if "$@"; then ok "$desc"; else bad "$desc"; fi
}
kc() {
  local cfg=$1
  shift
  env -u KUBECONFIG HOME="$WORK" timeout 60 "$KUBECTL" --kubeconfig "$cfg" --cache-dir "$WORK/cache" "$@"
}

cat >"$WORK/objects.json" <<'JSON'
{"kind": "List", "apiVersion": "v1", "items": [
 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
 {"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "shop", "generation": 1, "resourceVersion": "100", "uid": "3d0c6a54-1b8f-4e55-9a0e-5b1f0c7c0a01",
               "creationTimestamp": "2024-05-01T12:00:00Z", "labels": {"app": "web"}},
  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
           "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
           "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "registry.example.com/shop/web:1.0",
                                                 "env": [{"name": "A", "value": "1"}]},
                                                {"name": "proxy", "image": "registry.example.com/base/envoy:1.30"}]}}},
  "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}},
 {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": "shop"},
  "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "once", "image": "busybox:1"}]}}}},
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "namespace": "shop"},
  "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
  "status": {"containerStatuses": [{"name": "c", "image": "docker.io/library/busybox:1", "ready": true,
                                    "imageID": "docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111"}]}}
]}
JSON
cat >"$WORK/rbac.json" <<'JSON'
[{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cm", "namespace": "shop"},
  "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"], "verbs": ["get", "update"]}]},
 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "cm", "namespace": "shop"},
  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm"},
  "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "shop"}]}]
JSON
kube_setup "$WORK/kube"
start_kube_api W --objects "$WORK/objects.json" --rollout-delay-ms 1500 --unready-image :broken \
  --rbac "$WORK/rbac.json" --token-user system:serviceaccount:shop:robot
ADMIN=$W_CERT_KUBECONFIG # O=system:masters: RBAC lets it do anything
ROBOT=$W_TOKEN_KUBECONFIG

# ------------------------------------------------------------------ create, replace
cat >"$WORK/cm.json" <<'JSON'
{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"a": "1"}}
JSON
out=$(kc "$ADMIN" create --validate=false -f "$WORK/cm.json" 2>&1) && rc=0 || rc=$?
check "create -f configmap: rc=$rc '$out'" test "$rc" = 0 -a "$out" = "configmap/settings created"
out=$(kc "$ADMIN" create --validate=false -f "$WORK/cm.json" 2>&1) && rc=0 || rc=$?
check "create -f again: rc=$rc '$out'" \
  test "$rc" != 0 -a "$out" = 'Error from server (AlreadyExists): error when creating "'"$WORK/cm.json"'": configmaps "settings" already exists'
sed 's/"shop"/"nowhere"/' "$WORK/cm.json" >"$WORK/cm-nowhere.json"
out=$(kc "$ADMIN" create --validate=false -f "$WORK/cm-nowhere.json" 2>&1) && rc=0 || rc=$?
check "create -f in a missing namespace: rc=$rc '$out'" grep -q 'NotFound.*namespaces "nowhere" not found' <<<"$out"
rv=$(kc "$ADMIN" -n shop get configmap settings -o jsonpath='{.metadata.resourceVersion}')
jq --arg rv "$((rv - 1))" '.metadata.resourceVersion = $rv | .data.a = "2"' "$WORK/cm.json" >"$WORK/cm-stale.json"
out=$(kc "$ADMIN" replace --validate=false -f "$WORK/cm-stale.json" 2>&1) && rc=0 || rc=$?
check "replace with a stale resourceVersion: rc=$rc '$out'" grep -q 'Conflict.*the object has been modified; please apply your changes to the latest version and try again' <<<"$out"
jq --arg rv "$rv" '.metadata.resourceVersion = $rv | .data.a = "2"' "$WORK/cm.json" >"$WORK/cm-fresh.json"
out=$(kc "$ADMIN" replace --validate=false -f "$WORK/cm-fresh.json" 2>&1) && rc=0 || rc=$?
check "replace with the current resourceVersion: rc=$rc '$out', data.a=$(kc "$ADMIN" -n shop get cm settings -o jsonpath='{.data.a}')" \
  test "$rc" = 0 -a "$(kc "$ADMIN" -n shop get cm settings -o jsonpath='{.data.a}')" = 2

# ------------------------------------------------------------------ set image, patch
before=$(kc "$ADMIN" -n shop get deploy web -o json)
out=$(kc "$ADMIN" -n shop set image deployment/web web=mirror.example.com/shop/web:1.0 2>&1) && rc=0 || rc=$?
after=$(kc "$ADMIN" -n shop get deploy web -o json)
check "set image (strategic merge patch): rc=$rc '$out'" test "$out" = "deployment.apps/web image updated"
check "set image changed the web container's image and nothing else of the spec; generation 1 -> $(jq .metadata.generation <<<"$after")" \
  test "$(jq -S '.spec.template.spec.containers[0].image = "mirror.example.com/shop/web:1.0" | .spec' <<<"$before")" = "$(jq -S .spec <<<"$after")" \
  -a "$(jq .metadata.generation <<<"$after")" = 2
t0=$(date +%s%N)
out=$(kc "$ADMIN" -n shop rollout status deployment/web 2>&1) && rc=0 || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "rollout status waited for the controller (${ms} ms, watch): rc=$rc '$(tr '\n' '|' <<<"$out")'" \
  test "$rc" = 0 -a "$(head -1 <<<"$out")" = "Waiting for deployment spec update to be observed..." \
  -a "$(tail -1 <<<"$out")" = 'deployment "web" successfully rolled out'
out=$(kc "$ADMIN" -n shop patch deployment web --type merge -p '{"metadata":{"annotations":{"note":"x"}}}' 2>&1) && rc=0 || rc=$?
check "patch --type merge: rc=$rc '$out', annotation $(kc "$ADMIN" -n shop get deploy web -o jsonpath='{.metadata.annotations.note}')" \
  test "$rc" = 0 -a "$(kc "$ADMIN" -n shop get deploy web -o jsonpath='{.metadata.annotations.note}')" = x
out=$(kc "$ADMIN" -n shop patch deployment web --type json -p '[{"op":"test","path":"/spec/template/spec/containers/1/image","value":"nope"},{"op":"replace","path":"/spec/template/spec/containers/1/image","value":"x"}]' 2>&1) && rc=0 || rc=$?
check "patch --type json with a failing test: rc=$rc '$out', image kept" \
  test "$rc" != 0 -a "$(kc "$ADMIN" -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[1].image}')" = registry.example.com/base/envoy:1.30
out=$(kc "$ADMIN" -n shop patch deployment web --type json -p '[{"op":"test","path":"/spec/template/spec/containers/1/name","value":"proxy"},{"op":"replace","path":"/spec/template/spec/containers/1/image","value":"mirror.example.com/base/envoy:1.30"}]' 2>&1) && rc=0 || rc=$?
check "patch --type json: rc=$rc '$out'" \
  test "$rc" = 0 -a "$(kc "$ADMIN" -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[1].image}')" = mirror.example.com/base/envoy:1.30
out=$(kc "$ADMIN" -n shop patch deployment web -p '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"B","value":"2"}]}]}}}}' 2>&1) && rc=0 || rc=$?
check "patch (strategic): env merged by name: $(kc "$ADMIN" -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[0].env[*].name}')" \
  test "$rc" = 0 -a "$(kc "$ADMIN" -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[0].env[*].name}')" = "A B"
sleep 2 # the strategic patch changed the template: let the controller's status write pass
rv=$(kc "$ADMIN" -n shop get deploy web -o jsonpath='{.metadata.resourceVersion}')
out=$(kc "$ADMIN" -n shop set image deployment/web web=other.example.com/web:9 --dry-run=server -o jsonpath='{.spec.template.spec.containers[0].image}' 2>&1) && rc=0 || rc=$?
check "set image --dry-run=server: answered $out, stored image and resourceVersion unchanged" \
  test "$rc" = 0 -a "$out" = other.example.com/web:9 \
  -a "$(kc "$ADMIN" -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[0].image}')" = mirror.example.com/shop/web:1.0 \
  -a "$(kc "$ADMIN" -n shop get deploy web -o jsonpath='{.metadata.resourceVersion}')" = "$rv"
out=$(kc "$ADMIN" -n shop set image job/once once=busybox:2 2>&1) && rc=0 || rc=$?
check "set image on a Job: rc=$rc '$out'" grep -q 'Job.batch "once" is invalid: spec.template: Invalid value: .*field is immutable' <<<"$out"
out=$(kc "$ADMIN" -n shop set image pod/bare c=busybox:2 2>&1) && rc=0 || rc=$?
check "set image on a bare Pod: rc=$rc '$out'" test "$rc" = 0
out=$(kc "$ADMIN" -n shop patch pod bare -p '{"spec":{"restartPolicy":"Never"}}' 2>&1) && rc=0 || rc=$?
check "patching a Pod's restartPolicy: rc=$rc '$out'" grep -q '^The Pod "bare" is invalid: spec: Forbidden: pod updates may not change fields other than' <<<"$out"
sleep 2
check "the Pod's container status took the new image, its imageID the old digest: $(kc "$ADMIN" -n shop get pod bare -o jsonpath='{.status.containerStatuses[0].image} {.status.containerStatuses[0].imageID}')" \
  test "$(kc "$ADMIN" -n shop get pod bare -o jsonpath='{.status.containerStatuses[0].image} {.status.containerStatuses[0].imageID}')" = \
  "busybox:2 busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111"

# ------------------------------------------------------------------ a rollout that never becomes ready
kc "$ADMIN" -n shop set image deployment/web web=mirror.example.com/shop/web:broken >/dev/null
out=$(kc "$ADMIN" -n shop rollout status deployment/web 2>&1) && rc=0 || rc=$?
check "rollout status of an image that never becomes ready: rc=$rc '$(tail -1 <<<"$out")'" \
  test "$rc" != 0 -a "$(tail -1 <<<"$out")" = 'error: deployment "web" exceeded its progress deadline'

# ------------------------------------------------------------------ watch
kc "$ADMIN" -n shop get deploy --watch-only -o name >"$WORK/watch.out" 2>"$WORK/watch.err" &
wpid=$!
sleep 1.5
kc "$ADMIN" -n shop patch deployment web --type merge -p '{"metadata":{"labels":{"w":"1"}}}' >/dev/null
sleep 1
kill "$wpid" 2>/dev/null || true
wait "$wpid" 2>/dev/null || true
check "get --watch-only saw the change: '$(tr '\n' ' ' <<<"$(cat "$WORK/watch.out")")'" grep -q '^deployment.apps/web$' "$WORK/watch.out"

# ------------------------------------------------------------------ RBAC
out=$(kc "$ROBOT" -n shop get deploy 2>&1) && rc=0 || rc=$?
check "RBAC: the robot may not list deployments: '$out'" \
  test "$out" = 'Error from server (Forbidden): deployments.apps is forbidden: User "system:serviceaccount:shop:robot" cannot list resource "deployments" in API group "apps" in the namespace "shop"'
jq '.metadata.name = "mine"' "$WORK/cm.json" >"$WORK/mine.json"
out=$(kc "$ROBOT" create --validate=false -f "$WORK/mine.json" 2>&1) && rc=0 || rc=$?
check "RBAC: the robot may create a configmap: rc=$rc '$out'" test "$rc" = 0
out=$(kc "$ROBOT" -n shop get cm mine -o name 2>&1) && rc=0 || rc=$?
check "RBAC: ... and get the one its resourceNames name: '$out'" test "$out" = configmap/mine
out=$(kc "$ROBOT" -n shop get cm settings -o name 2>&1) && rc=0 || rc=$?
check "RBAC: ... but not another: '$out'" \
  test "$out" = 'Error from server (Forbidden): configmaps "settings" is forbidden: User "system:serviceaccount:shop:robot" cannot get resource "configmaps" in API group "" in the namespace "shop"'
sed 's/"shop"/"default"/' "$WORK/cm.json" >"$WORK/cm-default.json"
out=$(kc "$ROBOT" create --validate=false -f "$WORK/cm-default.json" 2>&1) && rc=0 || rc=$?
check "RBAC: a Role's rules hold in its namespace only: '$out'" grep -q 'cannot create resource "configmaps" in API group "" in the namespace "default"' <<<"$out"

errs=$(cat "$WORK"/kube/*.stderr)
check "server wrote nothing on stderr${errs:+: $errs}" test -z "$errs"
if [ "$FAILED" = 0 ]; then
  echo "PASS: all checks passed in $(($(date +%s) - START)) s"
else
  echo "FAIL: $FAILED check(s) failed ($(($(date +%s) - START)) s)"
  exit 1
fi

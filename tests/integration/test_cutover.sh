#!/usr/bin/env bash
# The cutover, end to end on local registries and the suite's Kubernetes API server:
# - discovery completeness: an operator's RELATED_IMAGE_* variables, a Deployment scaled to zero, a
#   suspended CronJob and an Argo Rollout (--extra-resource) are in the audit and images.json;
# - after a migration, verify --cluster finds (a) a target that is missing, (b) a target only the
#   migration's robot can read (the namespace's pull secret holds a user the registry does not
#   know), (c) a single-arch target with an arm64 node in the cluster, (d) a digest mismatch; after
#   fixing them every workload is READY;
# - rewrite --apply --dry-run stores nothing; rewrite --apply --pin-digests --batch 2 switches (waits
#   for the rollouts), records the originals in annotations kubectl shows; rollback restores every
#   object's spec byte for byte and removes the annotations; a second rollback changes nothing;
# - side by side on a second API server: kubectl set image and kubectl patch give the same objects
#   as rewrite --apply and rollback, and kubectl rollout status the same answer;
# - bad input: an object changed after the switch, a missing annotation, a forbidden PATCH (403), a
#   conflict (409: read again), a rollout that never becomes ready (the batch stops): clear lines,
#   and nothing half-applied without saying so.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
source "$IM_REPO_ROOT/tests/kubeapi/kube_lib.sh"
im_on_exit kube_cleanup
export HOME=$IM_WORK/home KUBECONFIG=
unset DEFAULT_REGISTRY DEFAULT_NAMESPACE
mkdir -p "$HOME"
cd "$IM_WORK"

# ------------------------------------------------------------------ registries
start_registry src plain
start_registry dst htpasswd # the migration's robot: alice; the workloads' pull secrets: bob (or carol, unknown)
L=$IM_WORK/layout
make_layout "$L" web --layers 1 --layer-size 30000 >/dev/null
make_layout "$L" api --layers 1 --layer-size 30000 --platforms linux/amd64,linux/arm64 >/dev/null
make_layout "$L" worker --layers 1 --layer-size 30000 >/dev/null
make_layout "$L" worker-multi --layers 1 --layer-size 30000 --platforms linux/amd64,linux/arm64 --seed worker2 >/dev/null
make_layout "$L" db --layers 1 --layer-size 30000 --platforms linux/amd64,linux/arm64 >/dev/null
make_layout "$L" other --layers 1 --layer-size 30000 --platforms linux/amd64,linux/arm64 >/dev/null
make_layout "$L" cache --layers 1 --layer-size 30000 --platforms linux/amd64,linux/arm64 >/dev/null
make_layout "$L" agent --layers 1 --layer-size 20000 --platforms linux/amd64,linux/arm64 >/dev/null
for img in web:1.0 api:2 worker:1 db:15 cache:3 agent:1 report:1 rollout:1 batch:1 debug:1; do
  case ${img%%:*} in report | rollout | batch | debug) layout_tag=api ;; *) layout_tag=${img%%:*} ;; esac
  seed "$L" "$layout_tag" "$SRC_ADDR/shop/$img"
done
S=$SRC_ADDR/shop
D=$DST_ADDR/org
cat >auth.json <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true, "username": "alice", "password": "alicepass"}}
JSON
dockercfg() { # USER PASS: a kubernetes.io/dockerconfigjson payload for the destination
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$DST_ADDR" "$(printf '%s:%s' "$1" "$2" | base64 -w0)" | base64 -w0
}
DEBUG_DIGEST=$(raw_digest "$S/debug:1")

# ------------------------------------------------------------------ the cluster (real serialized shapes)
cat >cluster.json <<JSON
{"kind": "List", "apiVersion": "v1", "items": [
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"}},
  "status": {"nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.32.0"}}},
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-b", "labels": {"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux"}},
  "status": {"nodeInfo": {"architecture": "arm64", "operatingSystem": "linux", "kubeletVersion": "v1.32.0"}}},
 {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": "shop"}, "type": "kubernetes.io/dockerconfigjson",
  "data": {".dockerconfigjson": "$(dockercfg bob bobpass)"}},
 {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "shop"}, "imagePullSecrets": [{"name": "regcred"}]},
 {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull", "namespace": "billing"}, "type": "kubernetes.io/dockerconfigjson",
  "data": {".dockerconfigjson": "$(dockercfg carol carolpass)"}},
 {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": "ops"}, "type": "kubernetes.io/dockerconfigjson",
  "data": {".dockerconfigjson": "$(dockercfg bob bobpass)"}},
 {"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "shop", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000001", "resourceVersion": "1001", "generation": 4,
               "labels": {"app": "web"}, "annotations": {"deployment.kubernetes.io/revision": "4"}},
  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
           "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
           "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"nodeSelector": {"kubernetes.io/arch": "amd64"},
                                 "initContainers": [{"name": "migrate-db", "image": "$S/db:15", "imagePullPolicy": "IfNotPresent"}],
                                 "containers": [{"name": "web", "image": "$S/web:1.0", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                                 "env": [{"name": "MODE", "value": "prod"}], "imagePullPolicy": "IfNotPresent"},
                                                {"name": "cache", "image": "$S/cache:3", "imagePullPolicy": "IfNotPresent"}],
                                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst"}}},
  "status": {"observedGeneration": 4, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}},
 {"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "batch", "namespace": "shop", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000002", "resourceVersion": "1002", "generation": 2},
  "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "batch"}},
           "template": {"metadata": {"labels": {"app": "batch"}}, "spec": {"containers": [{"name": "batch", "image": "$S/batch:1"}]}}},
  "status": {"observedGeneration": 2}},
 {"apiVersion": "apps/v1", "kind": "StatefulSet",
  "metadata": {"name": "db", "namespace": "shop", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000003", "resourceVersion": "1003", "generation": 1},
  "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
           "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
           "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "postgres", "image": "$S/db:15"}]}}},
  "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "currentReplicas": 1, "updatedReplicas": 1,
             "currentRevision": "db-5d8f7c9b4", "updateRevision": "db-5d8f7c9b4"}},
 {"apiVersion": "apps/v1", "kind": "DaemonSet",
  "metadata": {"name": "worker", "namespace": "shop", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000004", "resourceVersion": "1004", "generation": 1},
  "spec": {"selector": {"matchLabels": {"app": "worker"}}, "updateStrategy": {"type": "RollingUpdate"},
           "template": {"metadata": {"labels": {"app": "worker"}}, "spec": {"containers": [{"name": "worker", "image": "$S/worker:1"}]}}},
  "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "updatedNumberScheduled": 2,
             "numberReady": 2, "numberAvailable": 2}},
 {"apiVersion": "batch/v1", "kind": "CronJob",
  "metadata": {"name": "report", "namespace": "shop", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000005", "resourceVersion": "1005", "generation": 1},
  "spec": {"schedule": "0 3 * * *", "suspend": true, "concurrencyPolicy": "Forbid",
           "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "report", "image": "$S/report:1"}]}}}}}},
 {"apiVersion": "batch/v1", "kind": "Job",
  "metadata": {"name": "seed-once", "namespace": "shop", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000006", "resourceVersion": "1006"},
  "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "seed", "image": "$S/db:15"}]}}}},
 {"apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "debug", "namespace": "shop", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000007", "resourceVersion": "1007"},
  "spec": {"containers": [{"name": "debug", "image": "$S/debug:1"}], "imagePullSecrets": [{"name": "regcred"}], "serviceAccountName": "default"},
  "status": {"phase": "Running", "containerStatuses": [{"name": "debug", "image": "$S/debug:1", "ready": true, "started": true,
             "imageID": "$S/debug@$DEBUG_DIGEST", "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}}]}},
 {"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "api", "namespace": "billing", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000008", "resourceVersion": "1008", "generation": 1},
  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
           "template": {"metadata": {"labels": {"app": "api"}},
                        "spec": {"imagePullSecrets": [{"name": "pull"}], "containers": [{"name": "api", "image": "$S/api:2"}]}}},
  "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}},
 {"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "agent-operator", "namespace": "ops", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000009", "resourceVersion": "1009", "generation": 1},
  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "agent-operator"}},
           "template": {"metadata": {"labels": {"app": "agent-operator"}},
                        "spec": {"imagePullSecrets": [{"name": "regcred"}],
                                 "containers": [{"name": "operator", "image": "$S/api:2",
                                                 "env": [{"name": "RELATED_IMAGE_AGENT", "value": "$S/agent:1"},
                                                         {"name": "WATCH_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]}]}}},
  "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}},
 {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
  "metadata": {"name": "canary", "namespace": "shop", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-00000000000a", "resourceVersion": "1010", "generation": 1},
  "spec": {"replicas": 1, "strategy": {"canary": {"steps": [{"setWeight": 20}]}},
           "template": {"metadata": {"labels": {"app": "canary"}}, "spec": {"containers": [{"name": "canary", "image": "$S/rollout:1"}]}}}}
]}
JSON
# The "operator" user (a token) may read and patch, but not patch DaemonSets; the kube_lib client
# certificate (system:masters) may do anything.
cat >rbac.json <<'JSON'
[{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cutover"},
  "rules": [{"apiGroups": ["", "apps", "batch", "argoproj.io"], "resources": ["*"], "verbs": ["get", "list"]},
            {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["patch"]},
            {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]},
 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "cutover"},
  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cutover"},
  "subjects": [{"kind": "User", "name": "operator"}]}]
JSON
kube_setup "$IM_WORK/kube"
start_kube_api K --objects cluster.json --resource argoproj.io/v1alpha1/rollouts/Rollout --rbac rbac.json \
  --token-user operator --rollout-delay-ms 300
ADMIN=$K_CERT_KUBECONFIG
kc() { env -u KUBECONFIG timeout 60 kubectl --kubeconfig "$ADMIN" --cache-dir "$IM_WORK/kcache" "$@"; }
EXTRA=(--extra-resource argoproj.io/v1alpha1/rollouts=spec.template)
im() { # NAME ARGS...: image-migrator, output in NAME.out; sets rc
  local name=$1
  shift
  rc=0
  im_run "$IM_BIN" "$@" >"$name.out" 2>&1 || rc=$?
}

# ------------------------------------------------------------------ discovery completeness
im config config -k "$ADMIN" -t "$D" -o images.json --report audit.json "${EXTRA[@]}"
assert_eq "$rc" 0 "config with --extra-resource: exit 0"
for want in agent:1 batch:1 report:1 rollout:1; do
  assert_eq "$(jq -r --arg k "$S/$want" '.[$k]' images.json)" "$D/$want" "images.json has shop/$want"
done
pass "... an operator's RELATED_IMAGE_AGENT, a Deployment scaled to zero, a suspended CronJob, an Argo Rollout"
assert_eq "$(jq -r --arg k "$S/agent:1" '.images[] | select(.image == $k) | .workloads[0] | "\(.kind) \(.containerType) \(.env)"' audit.json)" \
  "Deployment env RELATED_IMAGE_AGENT" "audit: the RELATED_IMAGE is marked as such"
assert_eq "$(jq -r --arg k "$S/rollout:1" '.images[] | select(.image == $k) | .workloads[0].kind' audit.json)" \
  "rollouts.argoproj.io" "audit: the Rollout's image, from its pod template"

# ------------------------------------------------------------------ migration, with (a)-(d) left in
jq --arg k "$S/cache:3" 'del(.[$k])' images.json >first-pass.json # (a): one image not copied yet
im migrate1 --auth auth.json --images first-pass.json --log "" --no-encrypt-auth
assert_eq "$rc" 0 "migration (all but cache:3)"
seed "$L" other "$D/db:15" # (d): the target tag overwritten with another image since
im verify1 verify --cluster -k "$ADMIN" --images images.json --auth auth.json "${EXTRA[@]}" --report verify1.json
cat verify1.out
assert_eq "$rc" 1 "verify --cluster: exit 1 (workloads NOT READY)"
line() { grep "^$1 *$2" verify1.out || fail "no line for $2: $(cat verify1.out)"; }
line "NOT READY" "Deployment shop/web" | grep -q "cache: target $D/cache:3 does not exist" || fail "(a) missing target not found"
pass "(a) a missing target: $(line "NOT READY" "Deployment shop/web" | grep -o 'cache: target [^;]*')"
line "NOT READY" "Deployment billing/api" |
  grep -q "api: not pullable with the credentials of pull secret billing/pull: .*401" || fail "(b) not found"
pass "(b) a target only the robot can read: $(line "NOT READY" "Deployment billing/api" | grep -o 'not pullable[^;]*')"
line "NOT READY" "DaemonSet shop/worker" | grep -q "worker: no linux/arm64 image in $D/worker:1 (it has linux/amd64)" ||
  fail "(c) not found"
pass "(c) a single-arch target with an arm64 node: $(line "NOT READY" "DaemonSet shop/worker" | grep -o 'no linux/arm64[^;]*')"
line "NOT READY" "StatefulSet shop/db" | grep -q "postgres: digest mismatch: the source $S/db:15 is sha256:.*, the target $D/db:15 is sha256:" ||
  fail "(d) not found"
pass "(d) a digest mismatch: $(line "NOT READY" "StatefulSet shop/db" | grep -o 'digest mismatch: the source [^ ]*')..."
line "NOT READY" "Job shop/seed-once" >/dev/null # db:15 too
line "READY" "Pod shop/debug" >/dev/null
assert_eq "$(jq -r '.workloads[] | select(.name == "debug") | .containers[0].expectedFrom' verify1.json)" "running pod" \
  "a bare Pod is compared with the digest it runs (imageID)"
line "READY" "Deployment ops/agent-operator" >/dev/null
grep -q "note: RELATED_IMAGE_AGENT of container operator: an image the operator runs itself" verify1.out || fail "no RELATED_IMAGE note"
line "READY" "CronJob shop/report" >/dev/null
line "READY" "rollouts.argoproj.io shop/canary" >/dev/null
grep -q "verified 10 workload(s): 5 ready, 5 not ready (nodes: linux/amd64, linux/arm64)" verify1.out || fail "summary: $(tail -1 verify1.out)"
pass "summary: $(tail -1 verify1.out)"
assert_eq "$(jq '.notReady' verify1.json)" 5 "--report: JSON with 5 not ready"
# Nothing changed in the cluster, and the robot's password was never printed.
no_leak alicepass alice verify1.out verify1.json
no_leak bobpass bob verify1.out verify1.json

# ------------------------------------------------------------------ --apply refuses what is NOT READY
im refused rewrite --apply -k "$ADMIN" --images images.json --auth auth.json -n billing
assert_eq "$rc" 1 "rewrite --apply on a NOT READY workload: exit 1"
grep -q "^REFUSED    Deployment billing/api: NOT READY (api: not pullable.*); fix it, or --force" refused.out || fail "$(cat refused.out)"
assert_eq "$(kc -n billing get deploy api -o jsonpath='{.spec.template.spec.containers[0].image}')" "$S/api:2" "... and left it alone"

# ------------------------------------------------------------------ fixing (a)-(d)
seed "$L" worker-multi "$S/worker:1" # (c): the source gets the arm64 image too
im migrate2 --auth auth.json --images images.json --log "" --no-encrypt-auth # (a), (c), (d): copied again
assert_eq "$rc" 0 "migration again: cache copied, worker and db replaced"
kc -n billing create secret docker-registry pull --docker-server="$DST_ADDR" --docker-username=bob --docker-password=bobpass \
  --dry-run=client -o json | kc replace --validate=false -f - >/dev/null # (b): a pull secret with access
im verify2 verify --cluster -k "$ADMIN" --images images.json --auth auth.json "${EXTRA[@]}"
cat verify2.out
assert_eq "$rc" 0 "verify --cluster after the fixes: every workload READY"
grep -q "verified 10 workload(s): 10 ready, 0 not ready" verify2.out || fail "$(tail -1 verify2.out)"

# ------------------------------------------------------------------ the switch
snapshot() { # FILE: every workload object, without what the API server maintains
  kc get deployments,statefulsets,daemonsets,cronjobs,jobs,pods -A -o json |
    jq -S '[.items[] | {kind, ns: .metadata.namespace, name: .metadata.name, spec, annotations: (.metadata.annotations // {})}]' >"$1"
}
snapshot before.json
im dry rewrite --apply --dry-run --pin-digests -k "$ADMIN" --images images.json --auth auth.json "${EXTRA[@]}"
assert_eq "$rc" 0 "rewrite --apply --dry-run: exit 0"
grep -q "^WOULD SWITCH Deployment shop/web: .*(checked by the API server, dryRun=All)" dry.out || fail "$(cat dry.out)"
grep -q "dryRun=All" "$K_LOG" || fail "no dryRun=All request"
snapshot after-dry.json
cmp -s before.json after-dry.json || fail "--dry-run changed the cluster"
pass "--dry-run: $(grep -c '^WOULD SWITCH' dry.out) workloads checked by the API server, nothing stored"

im switch rewrite --apply --pin-digests --batch 2 -k "$ADMIN" --images images.json --auth auth.json "${EXTRA[@]}"
cat switch.out
assert_eq "$rc" 0 "rewrite --apply --pin-digests --batch 2: exit 0"
WEB_DIGEST=$(raw_digest "$D/web:1.0" bob:bobpass)
assert_eq "$(kc -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[0].image}')" "$D/web@$WEB_DIGEST" \
  "web switched to its target, pinned to the verified digest"
assert_eq "$(kc -n shop get deploy web -o jsonpath='{.spec.template.spec.initContainers[0].image}')" "$D/db@$(raw_digest "$D/db:15" bob:bobpass)" \
  "... its init container too"
assert_eq "$(kc -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[0].env[0].value}/{.spec.template.spec.containers[0].ports[0].containerPort}')" \
  "prod/8080" "... and nothing else of the container"
kc -n shop describe deployment web >describe.txt
grep -q "image-migrator/original-images:" describe.txt || fail "kubectl describe shows no original images: $(grep -i annotations -A4 describe.txt)"
assert_eq "$(kc -n shop get deploy web -o jsonpath='{.metadata.annotations.image-migrator/original-images}' | jq -c .)" \
  "{\"containers\":{\"cache\":\"$S/cache:3\",\"web\":\"$S/web:1.0\"},\"initContainers\":{\"migrate-db\":\"$S/db:15\"}}" \
  "the annotation records the original image of each container"
grep -q "image-migrator/switched: .* by " describe.txt || fail "no who/when"
pass "kubectl describe shows the original images and who/when: $(grep -o 'image-migrator/switched: .*' describe.txt)"
grep -q "^ROLLED OUT Deployment shop/web" switch.out || fail "no rollout wait"
assert_eq "$(grep -c '^ROLLED OUT' switch.out)" "$(grep -c '^SWITCHED' switch.out)" "--batch 2: every switched workload's rollout waited for"
assert_eq "$(kc -n shop get cronjob report -o jsonpath='{.spec.jobTemplate.spec.template.spec.containers[0].image}')" \
  "$D/report@$(raw_digest "$D/report:1" bob:bobpass)" "the suspended CronJob switched"
assert_eq "$(kc -n shop get pod debug -o jsonpath='{.spec.containers[0].image}')" "$D/debug@$DEBUG_DIGEST" "the bare Pod switched"
grep -q "^MANUAL     Job shop/seed-once: a Job's pod template is immutable" switch.out || fail "Job not listed as manual"
grep -q "^MANUAL     rollouts.argoproj.io shop/canary: a custom resource" switch.out || fail "Rollout not listed as manual"
grep -q "^MANUAL     Deployment ops/agent-operator: operator RELATED_IMAGE_AGENT: left to the operator" switch.out ||
  fail "RELATED_IMAGE not left to the operator"
assert_eq "$(kc -n ops get deploy agent-operator -o jsonpath='{.spec.template.spec.containers[0].env[0].value}')" "$S/agent:1" \
  "... and its variable untouched"
im verify3 verify --cluster -k "$ADMIN" --images images.json --auth auth.json "${EXTRA[@]}"
assert_eq "$rc" 0 "verify --cluster after the switch: still READY ($(tail -1 verify3.out))"
im again rewrite --apply --pin-digests -k "$ADMIN" --images images.json --auth auth.json -n shop
assert_eq "$rc" 0 "rewrite --apply again: exit 0"
grep -q "^UNCHANGED  Deployment shop/web (already on its targets)" again.out || fail "$(cat again.out)"

# ------------------------------------------------------------------ rollback
im rollback1 rollback -k "$ADMIN"
cat rollback1.out
assert_eq "$rc" 0 "rollback: exit 0"
snapshot after-rollback.json
diff <(jq . before.json) <(jq . after-rollback.json) >rollback.diff || fail "rollback did not restore every object: $(head -20 rollback.diff)"
pass "rollback restored every object's spec and annotations byte for byte ($(jq length before.json) objects compared)"
im rollback2 rollback -k "$ADMIN"
assert_eq "$rc" 0 "rollback again: exit 0"
grep -q "nothing to roll back: no workload carries image-migrator/original-images" rollback2.out || fail "$(cat rollback2.out)"

# ------------------------------------------------------------------ side by side with kubectl
# A second server with the same objects: kubectl set image / patch / rollout status there, our
# rewrite --apply / rollback here, the same objects and answers.
start_kube_api C --objects cluster.json --resource argoproj.io/v1alpha1/rollouts/Rollout --rollout-delay-ms 300
kcC() { env -u KUBECONFIG timeout 60 kubectl --kubeconfig "$C_CERT_KUBECONFIG" --cache-dir "$IM_WORK/kcache" "$@"; }
spec_of() { "$1" -n shop get deploy web -o json | jq -S .spec; }
gen_of() { "$1" -n shop get deploy web -o jsonpath='{.metadata.generation}'; }
gk=$(gen_of kc)
gc=$(gen_of kcC)
im side rewrite --apply -k "$ADMIN" --images images.json --auth auth.json -n shop --workload deployment/web
assert_eq "$rc" 0 "rewrite --apply --workload deployment/web"
kcC -n shop set image deployment/web web="$D/web:1.0" cache="$D/cache:3" migrate-db="$D/db:15" >/dev/null
diff <(spec_of kc) <(spec_of kcC) >side.diff || fail "rewrite --apply and kubectl set image differ: $(head -20 side.diff)"
assert_eq "$(($(gen_of kc) - gk)) $(($(gen_of kcC) - gc))" "1 1" "rewrite --apply and kubectl set image give the same spec, one new generation each"
out_ours=$(kc -n shop rollout status deployment/web --timeout=30s 2>&1)
out_theirs=$(kcC -n shop rollout status deployment/web --timeout=30s 2>&1)
assert_eq "$(tail -1 <<<"$out_ours")" "$(tail -1 <<<"$out_theirs")" "kubectl rollout status answers the same for both: $(tail -1 <<<"$out_ours")"
im side-rb rollback -k "$ADMIN" -n shop --workload deployment/web
assert_eq "$rc" 0 "rollback --workload deployment/web"
kcC -n shop patch deployment web --type strategic \
  -p "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"$S/web:1.0\"},{\"name\":\"cache\",\"image\":\"$S/cache:3\"}],\"initContainers\":[{\"name\":\"migrate-db\",\"image\":\"$S/db:15\"}]}}}}" >/dev/null
diff <(spec_of kc) <(spec_of kcC) >side2.diff || fail "rollback and kubectl patch differ: $(head -20 side2.diff)"
assert_eq "$(spec_of kc)" "$(jq -S '.[] | select(.kind == "Deployment" and .name == "web") | .spec' before.json)" \
  "rollback and kubectl patch give the same spec, the one before the switch"
stop_kube_api C

# ------------------------------------------------------------------ bad input
im switch2 rewrite --apply -k "$ADMIN" --images images.json --auth auth.json -n shop
kc -n shop set image deployment/web web=elsewhere.example.com/web:9 >/dev/null # changed after the switch
kc -n shop annotate statefulset db image-migrator/switched-images- >/dev/null   # an annotation removed
im rollback3 rollback -k "$ADMIN" -n shop
cat rollback3.out
assert_eq "$rc" 1 "rollback with a changed object and a missing annotation: exit 1"
grep -q "^REFUSED    Deployment shop/web: changed since the switch (.* by .*): web is elsewhere.example.com/web:9 (the switch set $D/web:1.0); nothing restored" \
  rollback3.out || fail "no clear line for the changed object"
grep -q "^REFUSED    StatefulSet shop/db: its annotation image-migrator/switched-images is missing" rollback3.out || fail "no clear line for the missing annotation"
assert_eq "$(kc -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[0].image} {.spec.template.spec.containers[1].image}')" \
  "elsewhere.example.com/web:9 $D/cache:3" "the refused object was not touched (not half restored)"
grep -q "^RESTORED   CronJob shop/report" rollback3.out || fail "the others were not restored"
im rollback4 rollback -k "$ADMIN" -n shop --workload deployment/nosuch
assert_eq "$rc" 0 "rollback of a workload that was never switched: exit 0"
grep -q "^NOTHING    Deployment shop/nosuch: no image-migrator/original-images annotation" rollback4.out || fail "$(cat rollback4.out)"
im badwl rollback -k "$ADMIN" --workload deployment/web
assert_eq "$rc" 2 "--workload without -n: exit 2 ($(cat badwl.out))"

# A forbidden PATCH (the operator user may not patch DaemonSets).
kc -n shop annotate deployment web image-migrator/original-images- image-migrator/switched-images- image-migrator/switched- >/dev/null
kc -n shop set image deployment/web web="$S/web:1.0" >/dev/null
kc -n shop annotate statefulset db image-migrator/original-images- image-migrator/switched- >/dev/null
kc -n shop patch statefulset db -p "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"postgres\",\"image\":\"$S/db:15\"}]}}}}" >/dev/null
im forbidden rewrite --apply -k "$K_TOKEN_KUBECONFIG" --images images.json --auth auth.json -n shop
cat forbidden.out
assert_eq "$rc" 1 "rewrite --apply with a forbidden PATCH: exit 1"
grep -q '^FAILED     DaemonSet shop/worker: patching DaemonSet shop/worker: HTTP 403 Forbidden: daemonsets.apps "worker" is forbidden: User "operator" cannot patch resource "daemonsets"' \
  forbidden.out || fail "no clear 403 line"
grep -q "^SWITCHED   Deployment shop/web" forbidden.out || fail "the allowed ones were not switched"
assert_eq "$(kc -n shop get ds worker -o jsonpath='{.spec.template.spec.containers[0].image}')" "$S/worker:1" "the forbidden one is unchanged"
grep -q "switched [0-9]* workload(s), [0-9]* already on their targets, 1 refused or failed" forbidden.out || fail "summary: $(tail -2 forbidden.out)"
im rollback5 rollback -k "$ADMIN" -n shop
assert_eq "$rc" 0 "rollback of the partial switch: exit 0"

# A conflict (409) and a rollout that never becomes ready, on a second server.
start_kube_api B --objects cluster.json --rollout-delay-ms 300 --bump-before-patch 1 --unready-image /org/cache
im conflict rewrite --apply -k "$B_CERT_KUBECONFIG" --images images.json --auth auth.json -n shop --workload statefulset/db
cat conflict.out
assert_eq "$rc" 0 "a 409 Conflict: read again, retried, exit 0"
grep -q "^SWITCHED   StatefulSet shop/db: postgres=$D/db:15 (after 1 conflict(s): read again)" conflict.out || fail "$(cat conflict.out)"
grep -c "PATCH /apis/apps/v1/namespaces/shop/statefulsets/db.* 409" "$B_LOG" >/dev/null || fail "the server sent no 409"
im stuck rewrite --apply --batch 1 --rollout-timeout 20 -k "$B_CERT_KUBECONFIG" --images images.json --auth auth.json -n shop
cat stuck.out
assert_eq "$rc" 1 "a rollout that never becomes ready: exit 1"
grep -q "^STOPPED: the rollout of Deployment shop/web failed: exceeded its progress deadline; undo it with: image-migrator rollback -n shop --workload deployment/web" \
  stuck.out || fail "no STOPPED line"
grep -q "^NOT STARTED " stuck.out || fail "the rest was not listed as not started"
after_stop=$(sed -n '/^STOPPED/,$p' stuck.out | grep -c '^SWITCHED' || true)
assert_eq "$after_stop" 0 "nothing switched after the failed batch"

# ------------------------------------------------------------------ a newcomer's first cutover (on K)
# Messages for typos and kubectl's spellings.
im typo verify --cluster -k "$ADMIN" --images images.json --auth auth.json -n shop --workload deploymnet/web
assert_eq "$rc" 2 "--workload deploymnet/web: exit 2"
grep -q "unknown kind deploymnet (did you mean deployment?)" typo.out || fail "no suggestion: $(cat typo.out)"
im qualified verify --cluster -k "$ADMIN" --images images.json --auth auth.json -n shop --workload deployment.apps/web
assert_eq "$rc" 0 "--workload deployment.apps/web, as kubectl takes it: exit 0 ($(cat qualified.out))"
grep -q "^READY      Deployment shop/web" qualified.out || fail "$(cat qualified.out)"
im timeout-alone rewrite --apply --rollout-timeout 5 -k "$ADMIN" --images images.json --auth auth.json -n shop
assert_eq "$rc" 2 "--rollout-timeout without --batch: refused, exit 2"
grep -q "rollout-timeout goes with --batch" timeout-alone.out || fail "$(cat timeout-alone.out)"

# An image deliberately left out of images.json: NOT MAPPED, not NOT READY; the mapped containers of
# a workload are switched, the others named as staying.
kc -n shop set image deployment/web cache="$S/cache:3" >/dev/null # (left on its target by the runs above)
jq --arg a "$S/batch:1" --arg b "$S/cache:3" 'del(.[$a], .[$b])' images.json >partial.json
im partial-verify verify --cluster -k "$ADMIN" --images partial.json --auth auth.json -n shop
cat partial-verify.out
assert_eq "$rc" 0 "verify --cluster with a workload images.json leaves out: exit 0"
grep -q "^NOT MAPPED Deployment shop/batch (not in images.json: stays where it is)" partial-verify.out || fail "no NOT MAPPED line"
grep -q "^READY      Deployment shop/web (stays where it is, not in images.json: cache ($S/cache:3))" partial-verify.out ||
  fail "the unmapped container of web is not named as staying"
grep -q "verified .* 0 not ready, 1 not mapped (not in images.json)" partial-verify.out || fail "summary: $(tail -1 partial-verify.out)"
im partial-rewrite rewrite -k "$ADMIN" --images partial.json -n shop --format kubectl
grep -q "^# container cache: $S/cache:3 is not in images.json: it stays on its old registry \[-n shop deployment/web\]" \
  partial-rewrite.out || fail "plain rewrite says nothing of what stays: $(cat partial-rewrite.out)"
im partial-apply rewrite --apply -k "$ADMIN" --images partial.json --auth auth.json -n shop
cat partial-apply.out
assert_eq "$rc" 0 "rewrite --apply with a workload images.json leaves out: exit 0"
grep -q "^NOT MAPPED Deployment shop/batch" partial-apply.out || fail "no NOT MAPPED line"
grep -q "UNCHANGED  Deployment shop/batch" partial-apply.out && fail "an unmapped workload reported as already on its targets"
grep -q "^SWITCHED   Deployment shop/web: .*web=$D/web:1.0.* (stays where it is, not in images.json: cache ($S/cache:3))" \
  partial-apply.out || fail "web: $(grep 'shop/web' partial-apply.out)"
assert_eq "$(kc -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[1].image}')" "$S/cache:3" "... and cache left alone"
pass "a workload not in images.json is NOT MAPPED (exit 0); the mapped containers of another are switched, the rest named as staying"
im partial-rb rollback -k "$ADMIN" -n shop
assert_eq "$rc" 0 "rollback of the partial switch: exit 0 ($(cat partial-rb.out))"

# A planted original-images entry is not taken over by the switch.
kc -n shop annotate deployment web "image-migrator/original-images={\"containers\":{\"web\":\"evil.example.com/x:1\"}}" >/dev/null
im planted rewrite --apply -k "$ADMIN" --images images.json --auth auth.json -n shop --workload deployment/web
assert_eq "$rc" 0 "rewrite --apply over a planted annotation: exit 0 ($(cat planted.out))"
assert_eq "$(kc -n shop get deploy web -o jsonpath='{.metadata.annotations.image-migrator/original-images}' | jq -r .containers.web)" \
  "$S/web:1.0" "the switch records the image web had, not the planted one"
im planted-rb rollback -k "$ADMIN" -n shop --workload deployment/web
assert_eq "$(kc -n shop get deploy web -o jsonpath='{.spec.template.spec.containers[0].image}')" "$S/web:1.0" "rollback restores it"

# Annotations that do not describe a switch are refused whole, with the command that gives up on them.
kc -n shop annotate deployment batch \
  "image-migrator/original-images={\"containers\":{\"evil\":\"evil.example.com/x:1\"}}" \
  "image-migrator/switched-images={\"containers\":{\"evil\":\"(no such container)\"}}" >/dev/null
kc -n shop annotate statefulset db \
  "image-migrator/original-images={\"containers\":{\"postgres\":\"Not An Image!\"}}" \
  "image-migrator/switched-images={\"containers\":{\"postgres\":\"$S/db:15\"}}" >/dev/null
# A ReplicaSet the Deployment controller made, with the annotations it copied from its Deployment.
kc -n shop create --validate=false -f - >/dev/null <<JSON
{"apiVersion": "apps/v1", "kind": "ReplicaSet",
 "metadata": {"name": "web-5d8f7c9b4", "namespace": "shop",
              "annotations": {"image-migrator/original-images": "{\"containers\":{\"web\":\"$S/web:1.0\"}}",
                              "image-migrator/switched-images": "{\"containers\":{\"web\":\"$D/web:1.0\"}}"},
              "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "6f1c1a0e-1d2b-4c3a-9e8f-000000000001", "controller": true}]},
 "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
          "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "$D/web:1.0"}]}}}}
JSON
im planted-rb2 rollback -k "$ADMIN" -n shop
cat planted-rb2.out
assert_eq "$rc" 1 "rollback of objects with annotations that describe no switch: exit 1"
grep -q "^REFUSED    Deployment shop/batch: .*container evil.*; when the images are right, remove the annotations: kubectl -n shop annotate deployment batch image-migrator/original-images- image-migrator/switched-images- image-migrator/switched-$" \
  planted-rb2.out || fail "batch: $(grep shop/batch planted-rb2.out)"
assert_eq "$(kc -n shop get deploy batch -o jsonpath='{.spec.template.spec.containers[*].name}')" "batch" "no container added by rollback"
grep -q "^REFUSED    StatefulSet shop/db: .*the original image recorded for container postgres is not an image reference" planted-rb2.out ||
  fail "db: $(grep shop/db planted-rb2.out)"
assert_eq "$(kc -n shop get sts db -o jsonpath='{.spec.template.spec.containers[0].image}')" "$S/db:15" "db left as it is"
grep -q "ReplicaSet" planted-rb2.out && fail "rollback touched a ReplicaSet its Deployment owns: $(grep ReplicaSet planted-rb2.out)"
assert_eq "$(kc -n shop get rs web-5d8f7c9b4 -o jsonpath='{.spec.template.spec.containers[0].image}')" "$D/web:1.0" "the owned ReplicaSet is untouched"
pass "rollback: no container added from an annotation, no invalid reference restored, no controller's copy touched"
kc -n shop annotate deployment batch image-migrator/original-images- image-migrator/switched-images- >/dev/null
kc -n shop annotate statefulset db image-migrator/original-images- image-migrator/switched-images- >/dev/null
kc -n shop delete rs web-5d8f7c9b4 >/dev/null

# The RBAC shipped for the cutover (manifests/cutover), bound to a user: enough for every check;
# without its secrets rule, the workloads are CANNOT CHECK (naming the permission), not NOT READY.
kubectl kustomize "$IM_REPO_ROOT/manifests/cutover" >cutover-rbac.yaml
rbac_for() { # USER [drop-secrets]
  python3 - "$@" <<'PY'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open("cutover-rbac.yaml")) if d]
if len(sys.argv) > 2:
    for d in docs:
        d["rules"] = [r for r in d["rules"] if "secrets" not in r["resources"]]
docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "cutover"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "image-migrator-cutover"},
             "subjects": [{"kind": "User", "name": sys.argv[1]}]})
print(json.dumps(docs))
PY
}
rbac_for alice >rbac-cutover.json
rbac_for alice drop-secrets >rbac-nosecrets.json
start_kube_api R --objects cluster.json --rbac rbac-cutover.json --token-user alice --rollout-delay-ms 100
im rbac-verify verify --cluster -k "$R_TOKEN_KUBECONFIG" --images images.json --auth auth.json -n shop
assert_eq "$rc" 0 "verify --cluster with exactly manifests/cutover's ClusterRole: exit 0 ($(tail -1 rbac-verify.out))"
im rbac-apply rewrite --apply --dry-run -k "$R_TOKEN_KUBECONFIG" --images images.json --auth auth.json -n shop
assert_eq "$rc" 0 "rewrite --apply --dry-run with it: exit 0 ($(grep -v '^WOULD' rbac-apply.out | head -5))"
grep -Eq "HTTP 403|403 Forbidden|forbidden" rbac-apply.out rbac-verify.out && fail "a 403 with the shipped ClusterRole" # not "403" alone: a port can hold it
stop_kube_api R
start_kube_api N --objects cluster.json --rbac rbac-nosecrets.json --token-user alice
im nosecrets-verify verify --cluster -k "$N_TOKEN_KUBECONFIG" --images images.json --auth auth.json -n shop
cat nosecrets-verify.out
assert_eq "$rc" 1 "verify --cluster without get on secrets: exit 1"
grep -q "^CANNOT CHECK Deployment shop/web: no permission to get secrets in namespace shop (its pull secrets)" nosecrets-verify.out ||
  fail "no CANNOT CHECK line"
assert_eq "$(grep -c "shop/web" nosecrets-verify.out)" 1 "one line for the workload"
grep -q "NOT READY" nosecrets-verify.out && fail "a missing permission reported as NOT READY"
im nosecrets-apply rewrite --apply -k "$N_TOKEN_KUBECONFIG" --images images.json --auth auth.json -n shop
assert_eq "$rc" 1 "rewrite --apply without get on secrets: exit 1"
grep -q "^CANNOT CHECK Deployment shop/web: no permission to get secrets in namespace shop .*; not switched" nosecrets-apply.out ||
  fail "$(cat nosecrets-apply.out)"
grep -q -- "--force" nosecrets-apply.out && fail "--force advised for a missing permission"
pass "a 403 while checking: CANNOT CHECK naming the permission, exit 1, nothing switched"
stop_kube_api N

# ------------------------------------------------------------------ a hostile API server
# Answers shaped to break the switch: a fresh GET without metadata, a container named 7, a numeric
# resourceVersion, an annotation that is JSON but not an object, objects of another namespace in a
# namespace's list, a node whose platform is a terminal escape, an error text that forges a line.
H=$IM_WORK/hostile
mkdir -p "$H"
_im_ensure_tls
cat >"$H/server.py" <<'PY'
import http.server, json, re, socketserver, ssl, sys
state_file, port_file, log_file, cert, key = sys.argv[1:6]
KINDS = {"pods": "Pod", "replicationcontrollers": "ReplicationController", "podtemplates": "PodTemplate",
         "deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet",
         "replicasets": "ReplicaSet", "jobs": "Job", "cronjobs": "CronJob", "secrets": "Secret",
         "serviceaccounts": "ServiceAccount", "nodes": "Node"}
GROUPS = {"/api/v1": ["pods", "replicationcontrollers", "podtemplates", "secrets", "serviceaccounts", "nodes", "namespaces"],
          "/apis/apps/v1": ["deployments", "statefulsets", "daemonsets", "replicasets"], "/apis/batch/v1": ["jobs", "cronjobs"]}
patched = set()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def find(self, st, path):
        m = re.fullmatch(r"/apis?(?:/[^/]+)?/v1/namespaces/([^/]+)/([^/]+)/([^/]+)", path)
        if not m:
            return None
        ns, plural, name = m.groups()
        return next((o for o in st["objects"] if o["kind"] == KINDS.get(plural) and o["metadata"]["namespace"] == ns
                     and o["metadata"]["name"] == name), None)
    def do_GET(self):
        st = json.load(open(state_file))
        path = self.path.split("?", 1)[0]
        with open(log_file, "a") as f:
            f.write(f"GET {self.path}\n")
        if path in GROUPS:
            return self.send(200, {"kind": "APIResourceList", "resources": [{"name": n, "namespaced": n != "nodes"} for n in GROUPS[path]]})
        if re.fullmatch(r"/api/v1/namespaces/[^/]+", path):
            return self.send(200, {"kind": "Namespace", "metadata": {"name": path.rsplit("/", 1)[1]}})
        if path in patched and path in st.get("after_patch", {}):
            o = st["after_patch"][path]
            return self.send(o["status"], o["body"])
        if path in st.get("get", {}):
            return self.send(200, st["get"][path])
        obj = self.find(st, path)
        if obj:
            return self.send(200, obj)
        plural = path.rsplit("/", 1)[1]
        if plural in KINDS and not re.fullmatch(r".*/namespaces/[^/]+/[^/]+/[^/]+", path):
            # A list: every object of the kind, whatever namespace the path names.
            return self.send(200, {"kind": "List", "apiVersion": "v1", "metadata": {},
                                   "items": [o for o in st["objects"] if o["kind"] == KINDS[plural]]})
        return self.send(404, {"kind": "Status", "status": "Failure", "message": "not found", "code": 404})
    def do_PATCH(self):
        st = json.load(open(state_file))
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        path = self.path.split("?", 1)[0]
        with open(log_file, "a") as f:
            f.write(f"PATCH {self.path} {body}\n")
        patched.add(path)
        obj = self.find(st, path)
        return self.send(200, obj) if obj else self.send(404, {"kind": "Status", "message": "not found", "code": 404})
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = S(("127.0.0.1", 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(port_file + ".tmp", "w").write(str(srv.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
PY
python3 - "$S" "$D" "$(dockercfg bob bobpass)" >"$H/state.json" <<'PY'
import json, sys
S, D, cfg = sys.argv[1:4]
status = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
def deploy(ns, name, containers=None, annotations=None, rv="1"):
    md = {"name": name, "namespace": ns, "resourceVersion": rv, "generation": 1}
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md,
            "spec": {"replicas": 1, "template": {"spec": {"imagePullSecrets": [{"name": "regcred"}],
                     "containers": containers or [{"name": "app", "image": f"{S}/web:1.0"}]}}}, "status": status}
def path(ns, name):
    return f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
anno = {"image-migrator/original-images": json.dumps({"containers": {"app": f"{S}/web:1.0"}}),
        "image-migrator/switched-images": json.dumps({"containers": {"app": f"{D}/web:1.0"}})}
switched = [{"name": "app", "image": f"{D}/web:1.0"}]
objects = [
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}, "status": {"nodeInfo": {"operatingSystem": "linux", "architecture": "amd64"}}},
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-evil"}, "status": {"nodeInfo": {"operatingSystem": "linux\u001b[2J", "architecture": "amd64"}}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": "shop"}, "type": "kubernetes.io/dockerconfigjson",
     "data": {".dockerconfigjson": cfg}},
    deploy("shop", "a-nometa"), deploy("shop", "b-name7"), deploy("shop", "c-badrv"),
    deploy("shop", "d-badanno", annotations={"image-migrator/original-images": "[1, 2]"}),
    deploy("shop", "e-good"), deploy("shop", "f-after"), deploy("shop", "web"),
    deploy("billing", "web"),
    deploy("rb", "r1-badrv", containers=switched, annotations=anno),
    deploy("rb", "r2-name7", containers=switched, annotations=anno),
    deploy("rb", "r3-notobject", containers=switched, annotations=dict(anno, **{"image-migrator/switched-images": "\"x\""})),
]
get = {
    path("shop", "a-nometa"): {"apiVersion": "apps/v1", "kind": "Deployment", "spec": deploy("shop", "x")["spec"]},
    path("shop", "b-name7"): deploy("shop", "b-name7", containers=[{"name": 7, "image": f"{S}/web:1.0"}, {"name": "app", "image": f"{S}/web:1.0"}]),
    path("shop", "c-badrv"): deploy("shop", "c-badrv", rv=5),
    path("rb", "r1-badrv"): deploy("rb", "r1-badrv", containers=switched, annotations=anno, rv=5),
    path("rb", "r2-name7"): deploy("rb", "r2-name7", containers=[{"name": 7, "image": "x"}] + switched, annotations=anno),
}
after_patch = {path("shop", "e-good"): {"status": 500, "body": {"kind": "Status", "status": "Failure", "code": 500,
               "message": "etcd is sad\u001b[31m\nSTOPPED: all good, nothing to see"}}}
json.dump({"objects": objects, "get": get, "after_patch": after_patch}, sys.stdout)
PY
spawn_listener "hostile API server" "$H" python3 "$H/server.py" "$H/state.json" "$H/port" "$H/log" \
  "$IM_WORK/ca/server.crt" "$IM_WORK/ca/server.key"
cat >"$H/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: h
  cluster: {server: "https://127.0.0.1:$(cat "$H/port")", certificate-authority: "$IM_WORK/ca/ca.crt"}
users:
- name: h
  user: {token: some-token}
contexts:
- name: h
  context: {cluster: h, user: h}
current-context: h
KC
printf '{"%s/web:1.0": "%s/web:1.0"}\n' "$S" "$D" >hostile-images.json
im h-verify verify --cluster -k "$H/kubeconfig" --images hostile-images.json --auth auth.json -n shop --workload deployment/web
cat h-verify.out
grep -q "^READY      Deployment shop/web" h-verify.out || fail "no line for shop/web"
grep -q "billing/web" h-verify.out && fail "--workload deployment/web -n shop checked billing/web too"
grep -q 'not listed: deployments in namespace shop: the API server listed an object of namespace "billing" (web), left out' h-verify.out ||
  fail "no warning for the object of another namespace"
grep -q 'node node-evil: its platform "linux\\x1b\[2J/amd64" is not an os/architecture name' h-verify.out || fail "the bad node platform is not reported escaped"
grep -q "(nodes: linux/amd64)" h-verify.out || fail "summary nodes: $(tail -1 h-verify.out)"
pass "-n and --workload hold against a server that lists other namespaces; a node platform that is an escape sequence is reported escaped"
im h-apply rewrite --apply --batch 1 --rollout-timeout 10 -k "$H/kubeconfig" --images hostile-images.json --auth auth.json -n shop
cat h-apply.out
assert_eq "$rc" 1 "rewrite --apply against a hostile API server: exit 1, not a crash"
grep -q "internal error" h-apply.out && fail "one bad object ended the run"
grep -q "^FAILED     Deployment shop/a-nometa: .*no metadata.resourceVersion" h-apply.out || fail "a-nometa"
grep -q "^SWITCHED   Deployment shop/b-name7: app=$D/web:1.0" h-apply.out || fail "b-name7"
grep -q "^FAILED     Deployment shop/c-badrv: .*no metadata.resourceVersion string" h-apply.out || fail "c-badrv"
grep -q "^FAILED     Deployment shop/d-badanno: its annotation image-migrator/original-images is damaged" h-apply.out || fail "d-badanno"
grep -q '^STOPPED: cannot follow the rollout of Deployment shop/e-good: .*etcd is sad\\x1b\[31m\\nSTOPPED: all good' h-apply.out ||
  fail "the STOPPED line does not escape the API server's text"
grep -q '^NOT STARTED Deployment shop/f-after (stopped: .*etcd is sad\\x1b\[31m\\nSTOPPED' h-apply.out || fail "NOT STARTED line"
grep -q "^STOPPED: all good" h-apply.out && fail "the API server forged a line"
grep -q $'\x1b' h-apply.out h-verify.out && fail "a raw escape reached the output"
grep "PATCH .*c-badrv\|PATCH .*a-nometa\|PATCH .*d-badanno" "$H/log" && fail "a bad object was patched"
pass "each bad object fails alone, with a clear line; the API server's text is escaped"
im h-rollback rollback -k "$H/kubeconfig" -n rb
cat h-rollback.out
assert_eq "$rc" 1 "rollback against a hostile API server: exit 1, not a crash"
grep -q "internal error" h-rollback.out && fail "one bad object ended the rollback"
grep -q "^REFUSED    Deployment rb/r1-badrv: .*no metadata.resourceVersion string" h-rollback.out || fail "r1-badrv"
grep -q "^RESTORED   Deployment rb/r2-name7: app=$S/web:1.0" h-rollback.out || fail "r2-name7"
grep -q "^REFUSED    Deployment rb/r3-notobject: its annotation image-migrator/switched-images is damaged" h-rollback.out || fail "r3-notobject"
pass "rollback: each bad object refused alone"
echo "test_cutover: all checks passed"

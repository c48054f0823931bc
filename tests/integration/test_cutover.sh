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
echo "test_cutover: all checks passed"

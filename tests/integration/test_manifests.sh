#!/usr/bin/env bash
# manifests/ as a platform team meets it. Every piece builds offline with `kubectl kustomize`; the
# base (and manifests/ itself) starts nothing; no piece holds a Secret; every pod is locked down and
# the RBAC is read-only except the audit's own ConfigMap. Then each container's exact arguments run,
# as the kubelet would start them, against local registries and the suite's Kubernetes API server:
#   - the environment is the container's env and envFrom (the rendered ConfigMaps, a Secret key),
#     $(VAR) in the arguments expanded the kubelet's way;
#   - each volumeMount is a directory here (a ConfigMap's or the Secret's files, an emptyDir), and an
#     argument under a mountPath is the same path under that directory (the only change made to
#     them; an absolute path outside every mount fails the test: the pod would not have it);
#   - HOME and the working directory are read-only (readOnlyRootFilesystem);
#   - the audit's pod (the only one with automountServiceAccountToken) gets the in-cluster service
#     account, and the API server enforces the rendered Roles and bindings for it (RBAC);
#   - auth.json (the Secret) points the made-up registry names at the local registries ("address").
# The audit writes its ConfigMap and never touches a registry; the migration, the sharded Job (every
# index) and the re-sync end in exit 0 with the shipped rules (rule 8 included) and with the audit's
# proposal; an auth.json encrypted on a laptop fails in the pod with an error naming `auth export`,
# and works through `auth export | kubectl create secret` or with the key as the Secret's "key".
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
source "$IM_REPO_ROOT/tests/kubeapi/kube_lib.sh"
im_on_exit kube_cleanup
command -v kubectl >/dev/null || fail "kubectl is not installed"
M=$IM_REPO_ROOT/manifests
cd "$IM_WORK"
export HOME=$IM_WORK/home
mkdir -p "$HOME"

# ------------------------------------------------------------------ render and inspect
pieces=(. base audit migrate sharded resync)
for p in "${pieces[@]}"; do
  name=${p/./root}
  kubectl kustomize "$M/$p" >"rendered-$name.yaml" || fail "kubectl kustomize manifests/$p failed"
done
pass "kubectl kustomize builds all ${#pieces[@]} pieces offline: manifests/ $(printf '%s/ ' "${pieces[@]:1}")"

python3 - "$IM_WORK" <<'PY'
import json, sys, yaml
work = sys.argv[1]
def load(name):
    return [d for d in yaml.safe_load_all(open(f"{work}/rendered-{name}.yaml")) if d]
workload_kinds = {"Pod", "Job", "CronJob", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController"}
expect = {"audit": ("Job", "image-migrator-audit"), "migrate": ("Job", "image-migrator-migrate"),
          "sharded": ("Job", "image-migrator-sharded"), "resync": ("CronJob", "image-migrator-resync")}
containers = []
for name in ["root", "base", "audit", "migrate", "sharded", "resync"]:
    docs = load(name)
    for d in docs:
        if d["kind"] == "Secret":
            raise SystemExit(f"manifests/{name}: a Secret ({d['metadata']['name']}) would overwrite the user's on every apply")
        assert "data" not in d or d["kind"] == "ConfigMap", (name, d["kind"])
    runs = [d for d in docs if d["kind"] in workload_kinds]
    if name in ("root", "base"):
        assert not runs, f"{name} starts {[(d['kind'], d['metadata']['name']) for d in runs]}"
        print(f"PASS: manifests/{'' if name == 'root' else name + '/'} alone starts nothing ({', '.join(sorted(d['kind'] for d in docs))})")
        if name == "root":
            json.dump({d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"},
                      open(f"{work}/configmaps.json", "w"))
            json.dump([d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")],
                      open(f"{work}/rbac.json", "w"))
        continue
    kind, jobname = expect[name]
    assert [(d["kind"], d["metadata"]["name"]) for d in runs] == [(kind, jobname)], f"{name}: {[(d['kind'], d['metadata']['name']) for d in runs]}"
    job = runs[0]
    assert job["metadata"]["namespace"] == "image-migrator", name
    spec = job["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else job["spec"]
    pod = spec["template"]["spec"]
    psc = pod.get("securityContext", {})
    assert psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532, name
    assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
    assert pod.get("restartPolicy") == "Never", name
    assert pod.get("serviceAccountName") == "image-migrator", name
    automount = pod.get("automountServiceAccountToken")
    assert automount is (name == "audit"), f"{name}: automountServiceAccountToken {automount}"
    if kind == "CronJob":
        s = job["spec"]
        assert s["concurrencyPolicy"] == "Forbid" and s["startingDeadlineSeconds"] > 0, name
        assert s["successfulJobsHistoryLimit"] >= 1 and s["failedJobsHistoryLimit"] >= 1, name
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c["securityContext"]
        cname = f"{jobname}/{c['name']}"
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, cname
        assert sc["capabilities"]["drop"] == ["ALL"], cname
        assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"], cname
        assert c["image"] == "swr.example.com/platform/image-migrator:0.1.0", cname
        mounts = [{"mountPath": m["mountPath"], "volume": volumes[m["name"]]} for m in c.get("volumeMounts", [])]
        containers.append({"piece": name, "name": cname, "kind": kind, "automount": bool(automount),
                           "indexed": spec.get("completionMode") == "Indexed", "completions": spec.get("completions", 1),
                           "env": c.get("env", []), "envFrom": c.get("envFrom", []), "args": c["args"], "mounts": mounts})
    print(f"PASS: manifests/{name}/ adds exactly the {kind} {jobname}: non-root, read-only root, no capabilities, resources set")
json.dump(containers, open(f"{work}/containers.json", "w"))

# RBAC: read-only on exactly what the audit reads; writes only to its ConfigMap in its namespace.
rbac = json.load(open(f"{work}/rbac.json"))
cr = next(d for d in rbac if d["kind"] == "ClusterRole")
granted = {}
for r in cr["rules"]:
    for g in r["apiGroups"]:
        for res in r["resources"]:
            granted.setdefault((g, res), set()).update(r["verbs"])
assert granted == {("", "pods"): {"get", "list"}, ("", "replicationcontrollers"): {"get", "list"},
                   ("", "podtemplates"): {"get", "list"}, ("apps", "deployments"): {"get", "list"},
                   ("apps", "statefulsets"): {"get", "list"}, ("apps", "daemonsets"): {"get", "list"},
                   ("apps", "replicasets"): {"get", "list"}, ("batch", "jobs"): {"get", "list"},
                   ("batch", "cronjobs"): {"get", "list"}, ("", "namespaces"): {"get"}}, granted
role = next(d for d in rbac if d["kind"] == "Role")
assert role["metadata"]["namespace"] == "image-migrator"
assert sorted((tuple(r["resources"]), tuple(sorted(r["verbs"])), tuple(r.get("resourceNames", []))) for r in role["rules"]) == \
    [(("configmaps",), ("create",), ()), (("configmaps",), ("get", "update"), ("image-migrator-audit",))], role["rules"]
print("PASS: RBAC: get/list on the 9 kinds config reads and get on namespaces (cluster-wide, read-only); "
      "create configmaps and get/update of image-migrator-audit in image-migrator only; no secrets")
PY
# manifests/cutover: the ClusterRole a person running verify --cluster / rewrite --apply / rollback needs.
kubectl kustomize "$M/cutover" >rendered-cutover.yaml || fail "kubectl kustomize manifests/cutover failed"
python3 - "$IM_WORK" <<'PY2'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(f"{sys.argv[1]}/rendered-cutover.yaml")) if d]
assert [d["kind"] for d in docs] == ["ClusterRole"], [d["kind"] for d in docs]
for d in docs:
    assert d["kind"] not in ("Secret", "Job", "CronJob", "Pod") and "data" not in d and "stringData" not in d, d["kind"]
granted = {}
for r in docs[0]["rules"]:
    for g in r["apiGroups"]:
        for res in r["resources"]:
            granted.setdefault((g, res), set()).update(r["verbs"])
read = {"get", "list"}
want = {("", "pods"): read | {"patch"}, ("", "replicationcontrollers"): read | {"patch"}, ("", "podtemplates"): read,
        ("apps", "deployments"): read | {"patch"}, ("apps", "statefulsets"): read | {"patch"},
        ("apps", "daemonsets"): read | {"patch"}, ("apps", "replicasets"): read | {"patch"},
        ("batch", "jobs"): read, ("batch", "cronjobs"): read | {"patch"}, ("", "namespaces"): {"get"},
        ("", "nodes"): read, ("", "serviceaccounts"): read, ("", "secrets"): read}
assert granted == want, granted
print("PASS: manifests/cutover/: one ClusterRole, no Secret, nothing that runs: get/list on the workloads, nodes, "
      "service accounts and secrets; patch on the 7 kinds rewrite --apply switches")
PY2
jq -e '.["image-migrator-settings"].DEFAULT_REGISTRY == "swr.example.com"' configmaps.json >/dev/null ||
  fail "settings ConfigMap: $(jq -c . configmaps.json)"

# ------------------------------------------------------------------ the registries and the cluster
start_registry src plain
start_registry dst plain
start_registry dst2 plain
make_layout "$IM_WORK/layout" v1 --layers 2 --layer-size 50000 --seed manifests >/dev/null
make_layout "$IM_WORK/layout" v2 --layers 1 --layer-size 40000 --seed manifests2 >/dev/null
seed "$IM_WORK/layout" v1 "$SRC_ADDR/team/app:1.0"
seed "$IM_WORK/layout" v2 "$SRC_ADDR/team/app:1.1"
seed "$IM_WORK/layout" v2 "$SRC_ADDR/team/db:15"
# The Secret the user creates: the example's made-up names, reached through "address".
secret_auth() { # DST_ADDR FILE
  printf '{"registry.example.com": {"insecure": true, "address": "%s"},\n "swr.example.com": {"insecure": true, "address": "%s"}}\n' \
    "$SRC_ADDR" "$1" >"$2"
}
mkdir -p secret
secret_auth "$DST_ADDR" secret/auth.json

cat >cluster.json <<'JSON'
{"kind": "List", "apiVersion": "v1", "items": [
 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "image-migrator", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
 {"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "shop", "uid": "0b5b4d43-5a0e-4a43-9a7c-0e8e2a1f0c11", "resourceVersion": "4121", "generation": 3},
  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
           "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "registry.example.com/team/app:1.0", "imagePullPolicy": "IfNotPresent"}]}}},
  "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}},
 {"apiVersion": "apps/v1", "kind": "StatefulSet",
  "metadata": {"name": "db", "namespace": "shop", "uid": "7d1f3c55-2b8e-4f0d-8d61-3f5c9e6b2a22", "resourceVersion": "4188", "generation": 1},
  "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
           "template": {"metadata": {"labels": {"app": "db"}},
                        "spec": {"containers": [{"name": "postgres", "image": "registry.example.com/team/db:15"}]}}}},
 {"apiVersion": "apps/v1", "kind": "DaemonSet",
  "metadata": {"name": "kube-proxy", "namespace": "kube-system", "uid": "f3b0e7a2-9c4d-4e1b-8a55-6d2c1b0e9f33", "resourceVersion": "311", "generation": 1},
  "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
           "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                        "spec": {"containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.32.0"}]}}}},
 {"apiVersion": "batch/v1", "kind": "Job",
  "metadata": {"name": "image-migrator-audit", "namespace": "image-migrator", "uid": "9e2d7c61-0a3b-4c5d-9e8f-7a6b5c4d3e44", "resourceVersion": "5002"},
  "spec": {"template": {"spec": {"restartPolicy": "Never",
                                 "containers": [{"name": "audit", "image": "swr.example.com/platform/image-migrator:0.1.0"}]}}}}
]}
JSON
kube_setup "$IM_WORK/kube"
start_kube_api K --objects "$IM_WORK/cluster.json" --rbac "$IM_WORK/rbac.json" \
  --token-user system:serviceaccount:image-migrator:image-migrator
# The pod's service account directory (what the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount).
mkdir -p sa
cp "$K_TOKEN_FILE" sa/token
cp "$KUBE_CA" sa/ca.crt
echo image-migrator >sa/namespace
admin() { env -u KUBECONFIG timeout 60 kubectl --kubeconfig "$K_CERT_KUBECONFIG" --cache-dir "$IM_WORK/kcache" "$@"; }

# ------------------------------------------------------------------ running a container as the kubelet would
# run_container NAME [INDEX]: runs the container NAME ("job/container") of containers.json with the
# ConfigMaps of configmaps.json and the Secret files in ./secret; sets rc and writes NAME.out.
mkdir -p ro-home ro-workdir
chmod 555 ro-home ro-workdir
run_container() {
  local name=$1 index=${2:-} spec
  spec=$(python3 - "$IM_WORK" "$name" "$index" "$K_PORT" <<'PY'
import json, os, re, shutil, sys
work, name, index, kport = sys.argv[1:5]
c = next(x for x in json.load(open(f"{work}/containers.json")) if x["name"] == name)
cms = json.load(open(f"{work}/configmaps.json"))
secret_dir = f"{work}/secret"
secret = {f: open(os.path.join(secret_dir, f)).read() for f in os.listdir(secret_dir)}
env = {"PATH": os.environ["PATH"], "HOME": f"{work}/ro-home"}
for src in c["envFrom"]:
    env.update(cms[src["configMapRef"]["name"]])
for e in c["env"]:
    if "value" in e:
        env[e["name"]] = e["value"]
    else:
        ref = e["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "image-migrator-auth", ref
        if ref["key"] in secret:
            env[e["name"]] = secret[ref["key"]]
        elif not ref.get("optional"):
            raise SystemExit(f"{name}: env {e['name']} needs Secret key {ref['key']}")
if c["indexed"]:
    env["JOB_COMPLETION_INDEX"] = index
if c["automount"]:
    env.update({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": kport,
                "IMAGE_MIGRATOR_SERVICEACCOUNT_DIR": f"{work}/sa"})
# The kubelet's $(VAR) expansion: defined variables replaced, $$ an escaped $, anything else kept.
def expand(s):
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), s)
args = [expand(a) for a in c["args"]]
run = f"{work}/run-{name.replace('/', '_')}{index}"
shutil.rmtree(run, ignore_errors=True)
mounts = []
for i, m in enumerate(c["mounts"]):
    d = f"{run}/mount{i}"
    os.makedirs(d)
    v = m["volume"]
    files = {}
    if "configMap" in v:
        files = cms[v["configMap"]["name"]]
    elif "secret" in v:
        files = secret
    elif "emptyDir" not in v:
        raise SystemExit(f"{name}: volume kind {v}")
    items = (v.get("configMap") or v.get("secret") or {}).get("items")
    if items:
        files = {it["path"]: files[it["key"]] for it in items if it["key"] in files}
    for f, text in files.items():
        open(os.path.join(d, f), "w").write(text)
    mounts.append((m["mountPath"].rstrip("/"), d))
def mapped(a):
    for mp, d in mounts:
        if a == mp or a.startswith(mp + "/"):
            return d + a[len(mp):]
    if a.startswith("/"):
        raise SystemExit(f"{name}: argument {a} is a path outside every volume mount: the pod would not have it")
    return a
args = [mapped(a) for a in args]
cwd = next((d for mp, d in mounts if mp == "/work"), f"{work}/ro-workdir")  # the image's WORKDIR
# NUL-separated: values keep their newlines (a key file's text, as a Secret key gives it).
open(f"{run}.env", "w").write("".join(f"{k}={v}\0" for k, v in env.items()))
open(f"{run}.args", "w").write("".join(a + "\0" for a in args))
print(json.dumps({"cwd": cwd, "run": run}))
PY
  ) || fail "$name: cannot be run as its pod would: $spec"
  local cwd run envs=() args=()
  cwd=$(jq -r .cwd <<<"$spec")
  run=$(jq -r .run <<<"$spec")
  mapfile -d '' -t envs <"$run.env"
  mapfile -d '' -t args <"$run.args"
  rc=0
  (cd "$cwd" && im_run env -i "${envs[@]}" "$IM_BIN" "${args[@]}") >"${name//\//_}$index.out" 2>&1 || rc=$?
}
reg_requests() { cat "$SRC_LOG" "$DST_LOG" "$DST2_LOG" | grep -c '"GET \|"HEAD \|"PUT \|"POST \|"PATCH \|msg="response completed' || true; }

# ------------------------------------------------------------------ audit
before=$(reg_requests)
k_before=$(wc -l <"$K_LOG")
run_container image-migrator-audit/audit
assert_eq "$rc" 0 "audit: the container's arguments end in exit 0 ($(tail -1 image-migrator-audit_audit.out))"
assert_eq "$(reg_requests)" "$before" "audit: no request reached any registry (it copies nothing)"
refused=$(tail -n +"$((k_before + 1))" "$K_LOG" | grep -c ' 403$' || true)
assert_eq "$refused" 0 "audit: every request allowed by the rendered RBAC ($(tail -n +"$((k_before + 1))" "$K_LOG" | wc -l) requests)"
grep -q '^registry.example.com/team/app:1.0 | 1 |' image-migrator-audit_audit.out || fail "audit: no table in the pod log"
admin -n image-migrator get configmap image-migrator-audit -o json >audit-cm.json || fail "kubectl cannot read the audit's ConfigMap"
jq -r '.data["images.json"]' audit-cm.json >proposed.json
assert_eq "$(jq -cS . proposed.json)" \
  '{"registry.example.com/team/app:1.0":"swr.example.com/org/app:1.0","registry.example.com/team/db:15":"swr.example.com/org/db:15"}' \
  "audit: kubectl reads the proposed images.json from the ConfigMap: shop's images, target from settings.env, kube-system and image-migrator left out"
assert_eq "$(jq -r '.data | keys | join(",")' audit-cm.json)" "audit.json,audit.txt,images.json" "audit: ConfigMap holds images.json, audit.json and audit.txt"
jq -e '.data["audit.json"] | fromjson | .images | length == 2' audit-cm.json >/dev/null || fail "audit.json in the ConfigMap"
# Run again: the ConfigMap is replaced (update on its name), not a second one.
run_container image-migrator-audit/audit
assert_eq "$rc" 0 "audit: a second run replaces its ConfigMap ($(grep -o 'written to ConfigMap [^:]*' image-migrator-audit_audit.out))"

# ------------------------------------------------------------------ migrate, with the shipped rules
run_container image-migrator-migrate/migrate
assert_eq "$rc" 0 "migrate: the shipped rules (rule 8 \"\" included) end in exit 0 ($(grep -o 'Images([0-9]*) migration finished[^"]*' image-migrator-migrate_migrate.out))"
same_digest "$SRC_ADDR/team/app:1.0" "$DST_ADDR/org/app:1.0" "migrate: team/app:1.0 copied to org/app"
same_digest "$SRC_ADDR/team/app:1.1" "$DST_ADDR/org/app:1.1" "migrate: team/app:1.1 copied (all tags)"
same_digest "$SRC_ADDR/team/db:15" "$DST_ADDR/org/db:15" "migrate: team/db:15 copied to DEFAULT_REGISTRY/DEFAULT_NAMESPACE (rule 8)"

run_container image-migrator-resync/migrate
assert_eq "$rc" 0 "resync: exit 0, nothing to copy ($(grep -o 'Images([0-9]*) migration finished[^"]*' image-migrator-resync_migrate.out))"

secret_auth "$DST2_ADDR" secret/auth.json
n=$(jq -r '.[] | select(.name == "image-migrator-sharded/migrate") | .completions' containers.json)
for ((i = 0; i < n; i++)); do
  run_container image-migrator-sharded/migrate "$i"
  assert_eq "$rc" 0 "sharded: index $i of $n ends in exit 0"
done
same_digest "$SRC_ADDR/team/app:1.1" "$DST2_ADDR/org/app:1.1" "sharded: the $n shards together copied every image (app:1.1)"
same_digest "$SRC_ADDR/team/db:15" "$DST2_ADDR/org/db:15" "sharded: ... and db:15"

# ------------------------------------------------------------------ the documented flow: the audit's proposal, reviewed
jq '.["image-migrator-images"]["images.json"] = $p' --rawfile p proposed.json configmaps.json >cm.new && mv cm.new configmaps.json
start_registry dst3 plain
secret_auth "$DST3_ADDR" secret/auth.json
run_container image-migrator-migrate/migrate
assert_eq "$rc" 0 "migrate with the audit's images.json: exit 0"
same_digest "$SRC_ADDR/team/app:1.0" "$DST3_ADDR/org/app:1.0" "the audit's proposal copied app:1.0 where the workloads will find it"

# ------------------------------------------------------------------ an auth.json encrypted on a laptop
mkdir -p laptop
secret_auth "$DST3_ADDR" laptop/auth.json
jq '.["registry.example.com"] += {"username": "u", "password": "laptop-secret-1"}' laptop/auth.json >laptop/a && mv laptop/a laptop/auth.json
echo '{}' >laptop/images.json
(cd laptop && XDG_CONFIG_HOME=$IM_WORK/laptop/xdg im_run "$IM_BIN" --auth auth.json --images images.json --log "" >/dev/null 2>&1) ||
  fail "the laptop run failed"
grep -q '"enc:v1:' laptop/auth.json || fail "the laptop run did not encrypt auth.json"
cp laptop/auth.json secret/auth.json
run_container image-migrator-migrate/migrate
assert_eq "$rc" 2 "an encrypted auth.json in the pod without the key: exit 2 (the Job fails at once)"
grep -q 'password: encrypted by an earlier run.*there is no key here.*image-migrator auth export --auth FILE.*docs/KUBERNETES.md' \
  image-migrator-migrate_migrate.out || fail "no error naming auth export: $(cat image-migrator-migrate_migrate.out)"
pass "... and the error names the way out: $(grep -o 'password: encrypted.\{0,60\}' image-migrator-migrate_migrate.out)..."
! grep -q laptop-secret-1 image-migrator-migrate_migrate.out || fail "the password leaked"
# Way 1: export in plaintext, piped into kubectl create secret (offline: --dry-run=client).
(cd laptop && XDG_CONFIG_HOME=$IM_WORK/laptop/xdg "$IM_BIN" auth export --auth auth.json |
  env -u KUBECONFIG kubectl create secret generic image-migrator-auth -n image-migrator \
    --from-file=auth.json=/dev/stdin --dry-run=client -o json) >secret.json ||
  fail "auth export | kubectl create secret failed"
jq -r '.data["auth.json"] | @base64d' secret.json >secret/auth.json
assert_eq "$(jq -r '.["registry.example.com"].password' secret/auth.json)" laptop-secret-1 "auth export | kubectl create secret: the Secret holds the plaintext password"
cmp -s <(jq -S . laptop/auth.json | grep -v password) <(jq -S . secret/auth.json | grep -v password) ||
  fail "auth export changed more than the encrypted values"
grep -q '"enc:v1:' laptop/auth.json || fail "auth export rewrote the laptop's file"
run_container image-migrator-migrate/migrate
assert_eq "$rc" 0 "the exported Secret works in the pod"
# Way 2: the ciphertext stays, the laptop's key goes in as the Secret's "key" (IMAGE_MIGRATOR_KEY).
cp laptop/auth.json secret/auth.json
cp laptop/xdg/image-migrator/key secret/key
run_container image-migrator-migrate/migrate
assert_eq "$rc" 0 "the ciphertext with the key as the Secret's optional \"key\" works in the pod"
rm secret/key
echo "test_manifests: all checks passed"

#!/usr/bin/env bash
# manifests/ builds offline with `kubectl kustomize`, every pod is locked down (non-root, read-only
# root filesystem, no capabilities, resources set), the ClusterRole is read-only on exactly the
# kinds `config` lists, and every container's arguments are accepted by the binary's flag parser.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
command -v kubectl >/dev/null || fail "kubectl is not installed"

kubectl kustomize "$IM_REPO_ROOT/manifests" >"$IM_WORK/all.yaml"
pass "kubectl kustomize manifests/ builds offline ($(grep -c '^kind:' "$IM_WORK/all.yaml") objects)"

python3 - "$IM_WORK/all.yaml" "$IM_WORK/args" <<'PY'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
want = sorted(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret", "ConfigMap", "Job", "Job", "CronJob"])
assert kinds == want, f"kinds {kinds}"
role = next(d for d in docs if d["kind"] == "ClusterRole")
granted = {}
for r in role["rules"]:
    assert sorted(r["verbs"]) == ["get", "list", "watch"], f"verbs {r['verbs']}"
    for g in r["apiGroups"]:
        granted.setdefault(g, set()).update(r["resources"])
assert granted == {"": {"pods", "replicationcontrollers", "podtemplates"},
                   "apps": {"deployments", "statefulsets", "daemonsets", "replicasets"},
                   "batch": {"jobs", "cronjobs"}}, f"granted {granted}"
print("PASS: ClusterRole: get/list/watch on exactly the 9 kinds config lists")
args = []
for d in docs:
    if d["kind"] not in ("Job", "CronJob"):
        continue
    spec = d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"]
    pod = spec["template"]["spec"]
    psc = pod.get("securityContext", {})
    assert psc.get("runAsNonRoot") is True, d["metadata"]["name"]
    assert pod.get("restartPolicy") == "Never"
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c["securityContext"]
        name = d["metadata"]["name"] + "/" + c["name"]
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"], name
        assert c["image"] == "swr.example.com/platform/image-migrator:0.1.0", name
        args.append({"name": name, "args": c["args"]})
    print(f"PASS: {d['metadata']['name']}: non-root, read-only root filesystem, capabilities dropped, resources set")
json.dump(args, open(sys.argv[2], "w"))
PY

# Every container's arguments get past the flag parser: the error (exit 2) is about the missing
# files or cluster of this machine, never about a flag.
n=$(jq length "$IM_WORK/args")
for i in $(seq 0 $((n - 1))); do
  name=$(jq -r ".[$i].name" "$IM_WORK/args")
  mapfile -t argv < <(jq -r ".[$i].args[]" "$IM_WORK/args")
  rc=0
  out=$(cd "$IM_WORK" && env -u KUBECONFIG HOME="$IM_WORK" JOB_COMPLETION_INDEX=0 KUBERNETES_SERVICE_HOST= \
    "$IM_BIN" "${argv[@]}" 2>&1) || rc=$?
  assert_eq "$rc" 2 "$name: arguments parse (exit 2 for the missing environment)"
  [[ "$out" != *"Option"* && "$out" != *"unexpected argument"* && "$out" != *"--shard"* ]] || fail "$name: flag error: $out"
  [[ "$out" == *"cannot open file"* || "$out" == *"no kubeconfig found"* ]] || fail "$name: unexpected error: $out"
  pass "$name: stopped at the environment: $out"
done
echo "test_manifests: all checks passed"

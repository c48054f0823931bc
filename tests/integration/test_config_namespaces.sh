#!/usr/bin/env bash
# Which namespaces `config` reads: --exclude-namespaces leaves some out (kubectl's view of the rest
# is the same), a namespace given with -n that does not exist is exit 3 (an audit of a typo must not
# read as "no images"; --allow-partial accepts it), one whose existence cannot be checked (no get
# on namespaces) is a warning, invalid names and a -n list that excludes itself are usage errors,
# and the target defaults to DEFAULT_REGISTRY/DEFAULT_NAMESPACE as for the copy command.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
source "$IM_REPO_ROOT/tests/kubeapi/kube_lib.sh"
im_on_exit kube_cleanup
export HOME=$IM_WORK/home KUBECONFIG=
unset DEFAULT_REGISTRY DEFAULT_NAMESPACE
mkdir -p "$HOME"
cd "$IM_WORK"
cat >cluster.json <<'JSON'
{"kind": "List", "apiVersion": "v1", "items": [
 {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
  "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry.example.com/shop/web:1.0"}]}}}},
 {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "billing"},
  "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "registry.example.com/billing/api:2"}]}}}},
 {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
  "spec": {"template": {"spec": {"containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.32.0"}]}}}},
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "coredns-1", "namespace": "kube-system"},
  "spec": {"containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.3"}]}}
]}
JSON
# A reader without get on namespaces (the lists only), next to the admin (client certificate).
cat >rbac.json <<'JSON'
[{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "lists"},
  "rules": [{"apiGroups": ["", "apps", "batch"], "resources": ["pods", "replicationcontrollers", "podtemplates", "deployments",
             "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs"], "verbs": ["get", "list"]}]},
 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "lists"},
  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lists"},
  "subjects": [{"kind": "User", "name": "reader"}]}]
JSON
kube_setup "$IM_WORK/kube"
start_kube_api K --objects cluster.json --rbac rbac.json --token-user reader
ADMIN=$K_CERT_KUBECONFIG
READER=$K_TOKEN_KUBECONFIG
cfg() { # OUT ARGS...: config with the admin's kubeconfig; sets rc
  local out=$1
  shift
  rc=0
  im_run "$IM_BIN" config -k "$ADMIN" -o "$out.json" "$@" >"$out.out" 2>&1 || rc=$?
}

# --exclude-namespaces: what kubectl lists outside those namespaces, exactly.
cfg excl -t swr.example.com/org --exclude-namespaces kube-system,kube-public,kube-node-lease
assert_eq "$rc" 0 "--exclude-namespaces: exit 0"
env -u KUBECONFIG kubectl --kubeconfig "$ADMIN" --cache-dir kcache get pods,deployments,daemonsets -A -o json |
  jq -r '.items[] | select(.metadata.namespace != "kube-system") | (.spec.template.spec // .spec).containers[].image' |
  sort -u >kubectl-images.txt
jq -r 'keys[]' excl.json | sort >ours.txt
diff kubectl-images.txt ours.txt >/dev/null || fail "--exclude-namespaces: ours $(tr '\n' ' ' <ours.txt), kubectl's $(tr '\n' ' ' <kubectl-images.txt)"
pass "--exclude-namespaces kube-system,...: the $(wc -l <ours.txt) images kubectl lists outside kube-system ($(grep -o '[0-9]* object(s) in the excluded namespaces left out' excl.out))"
cfg excl-n -t swr.example.com/org -n shop,billing --exclude-namespaces billing
assert_eq "$(jq -r 'keys | join(",")' excl-n.json)" "registry.example.com/shop/web:1.0" "-n shop,billing --exclude-namespaces billing: shop only"
! grep -q 'GET /apis/apps/v1/namespaces/billing/' "$K_LOG" || fail "an excluded namespace given with -n was listed"

# A namespace that does not exist.
cfg missing -t swr.example.com/org -n shop,nosuchns
assert_eq "$rc" 3 "-n shop,nosuchns: exit 3"
grep -q 'namespace nosuchns does not exist' missing.out || fail "no warning naming nosuchns: $(cat missing.out)"
grep -q 'namespace(s) nosuchns do not exist: nothing was listed there; --allow-partial accepts that' missing.out ||
  fail "no closing error: $(tail -2 missing.out)"
assert_eq "$(jq -r 'keys | join(",")' missing.json)" "registry.example.com/shop/web:1.0" "... images.json still written with shop's images"
cfg missing2 -t swr.example.com/org -n nosuchns --allow-partial
assert_eq "$rc" 0 "-n nosuchns --allow-partial: exit 0"
grep -q 'namespace(s) nosuchns do not exist (accepted: --allow-partial)' missing2.out || fail "no warning with --allow-partial"
assert_eq "$(cat missing2.json | jq -c .)" "{}" "... and an empty images.json"
# get on namespaces refused: cannot tell, so a warning, not an error.
rc=0
im_run "$IM_BIN" config -k "$READER" -t swr.example.com/org -n shop -o reader.json >reader.out 2>&1 || rc=$?
assert_eq "$rc" 0 "without get on namespaces: exit 0"
grep -q 'namespace shop: cannot tell whether it exists (get on namespaces is not allowed)' reader.out ||
  fail "no warning about the unchecked namespace: $(cat reader.out)"
grep -q 'GET /api/v1/namespaces/shop auth=token 403' "$K_LOG" || fail "the namespace was not asked for"

# Usage errors: exit 2, one line.
for bad in "Shop" "a_b" "../etc"; do
  cfg bad -t swr.example.com/org -n "$bad"
  assert_eq "$rc" 2 "-n $bad: exit 2"
  grep -q "\"$bad\" is not a namespace name" bad.out || fail "-n $bad: $(cat bad.out)"
done
cfg self -t swr.example.com/org -n shop --exclude-namespaces shop
assert_eq "$rc" 2 "-n shop --exclude-namespaces shop: exit 2"
grep -q "every namespace given with -n is also in --exclude-namespaces" self.out || fail "$(cat self.out)"

# The target from the environment, like the copy command's empty destinations.
rc=0
DEFAULT_REGISTRY=mirror.example.com DEFAULT_NAMESPACE=team im_run "$IM_BIN" config -k "$ADMIN" -n shop -o env.json \
  >env.out 2>&1 || rc=$?
assert_eq "$rc" 0 "no -t, DEFAULT_REGISTRY and DEFAULT_NAMESPACE set: exit 0"
assert_eq "$(jq -r '."registry.example.com/shop/web:1.0"' env.json)" mirror.example.com/team/web:1.0 "... the target comes from them"
cfg noenv -n shop
assert_eq "$rc" 2 "no -t and no DEFAULT_*: exit 2"
grep -q -- "-t/--repo REGISTRY/NAMESPACE is required (or DEFAULT_REGISTRY and DEFAULT_NAMESPACE in the environment)" noenv.out ||
  fail "$(cat noenv.out)"
echo "test_config_namespaces: all checks passed"

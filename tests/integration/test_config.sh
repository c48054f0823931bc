#!/usr/bin/env bash
# `image-migrator config` against the suite's Kubernetes API server (TLS, real serialized objects
# plus 1200 generated Deployments): it finds exactly the images kubectl sees, through every kind of
# credential (token, tokenFile, client certificate, *-data, exec plugin, in-cluster service
# account), paginated, restarting after 410, reporting 403 on one kind (exit 1 unless --allow-partial), falling back to
# batch/v1beta1; and the images.json it writes drives a real copy between two registries.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
source "$IM_REPO_ROOT/tests/kubeapi/kube_lib.sh"
im_on_exit kube_cleanup
FIX=$IM_REPO_ROOT/tests/data/k8s-objects
export HOME=$IM_WORK/home KUBECONFIG=
mkdir -p "$HOME"
kube_setup "$IM_WORK/kube"
start_kube_api K --objects "$FIX" --objects "$FIX/real" --generate 1200
cd "$IM_WORK"

# Every image kubectl sees (all kinds, all namespaces, chunked like ours).
kubectl --kubeconfig "$K_TOKEN_KUBECONFIG" --cache-dir "$IM_WORK/cache" get \
  pods,replicationcontrollers,podtemplates,deployments,statefulsets,daemonsets,replicasets,jobs,cronjobs \
  -A -o json --chunk-size=50 >kubectl.json
jq -r '.items[] | (.spec.template.spec // .template.spec // .spec.jobTemplate.spec.template.spec // .spec)
       | ((.containers // []) + (.initContainers // []) + (.ephemeralContainers // []) | .[].image),
         ((.volumes // [])[] | .image.reference // empty)' kubectl.json | sort -u >kubectl-images.txt
[ "$(wc -l <kubectl-images.txt)" -gt 1200 ] || fail "kubectl saw too few images"

rc=0
im_run "$IM_BIN" config -k "$K_TOKEN_KUBECONFIG" -t swr.example.com/org -o images.json --page-size 50 \
  --report audit.json >out 2>&1 || rc=$?
cat out | grep -v "^.*warn" | tail -5
# The fixtures' testdata objects use "imageValue"/"referenceValue", which are not valid references:
# reported one by one, and the exit code says so, but every valid image is in the file.
assert_eq "$rc" 3 "exit 3 because some spec images are not valid references"
grep -q 'invalid image reference, not in images.json: imageValue' out || fail "invalid image not reported"
jq -r '.images[].spellings[]' audit.json >found.txt
jq -r '.invalidImages[] | split(" (")[0]' audit.json >>found.txt
sort -u found.txt -o found.txt
diff kubectl-images.txt found.txt >diff.txt || fail "config and kubectl disagree: $(head -5 diff.txt)"
pass "config found exactly the $(wc -l <found.txt) images kubectl sees"
assert_eq "$(jq -r '."docker.io/library/nginx:alpine"' images.json)" "swr.example.com/org/nginx:alpine" "nginx:alpine normalized and flattened"
assert_eq "$(jq -r '."docker.io/istio/base:latest"' images.json)" "swr.example.com/org/base:latest" "istio/base gets :latest"
assert_eq "$(jq -r '."registry.example.com/team-6/app-13:1.3"' images.json)" "swr.example.com/org/app-13:1.3" "generated image planned"
assert_eq "$(jq -r 'keys == (keys | sort)' images.json)" true "keys sorted"
assert_eq "$(jq -r '.images[] | select(.image == "docker.io/library/nginx:alpine") | .runningDigests | keys[0]' audit.json)" \
  "sha256:482ead44b2203fa32b3390abdaf97cbdc8ad15c07fb03a3e68d7c35a19ad7595" "running digest read from docker-pullable:// imageID"
assert_eq "$(jq -r '.images[] | select(.image == "docker.io/istio/base:latest") | .flags.mutableTag' audit.json)" true "mutable tag flagged"
pages=$(grep -c "GET /apis/apps/v1/deployments?limit=50" "$K_LOG" || true)
[ "$pages" -ge 24 ] || fail "deployments were not paginated (pages=$pages)"
pass "deployments listed in $pages pages of 50"

# Same answer through every credential shape.
for kc in "$K_TOKENFILE_KUBECONFIG" "$K_CERT_KUBECONFIG" "$K_DATA_KUBECONFIG"; do
  rc=0
  im_run "$IM_BIN" config -k "$kc" -t swr.example.com/org -o images2.json >out2 2>&1 || rc=$?
  assert_eq "$rc" 3 "$(basename "$kc"): same exit code"
  cmp -s images.json images2.json || fail "$(basename "$kc"): different images.json"
  pass "$(basename "$kc"): identical images.json"
done

# Namespaces filter (the context's namespace is not a filter; -n is).
im_run "$IM_BIN" config -k "$K_TOKEN_KUBECONFIG" -t swr.example.com/org -n gen-1,gen-2 -o ns.json >out3 2>&1
assert_eq "$(jq 'length' ns.json)" 483 "-n gen-1,gen-2: 480 app images + 3 init images"
grep -q "GET /apis/apps/v1/namespaces/gen-1/deployments" "$K_LOG" || fail "no namespaced list request"

# Impersonation (as, as-groups): every request carries it, as kubectl's do.
sed '/^  user:$/a\    as: alice\n    as-groups: [ops]' "$K_TOKEN_KUBECONFIG" >as.kubeconfig
grep -q "as: alice" as.kubeconfig || fail "could not write the impersonating kubeconfig"
before=$(grep -c 'as="alice" as-groups=1' "$K_LOG" || true)
im_run "$IM_BIN" config -k as.kubeconfig -t swr.example.com/org -n gen-1 -o as.json >out3b 2>&1 || fail "config as alice failed: $(tail -2 out3b)"
ours=$(($(grep -c 'as="alice" as-groups=1' "$K_LOG") - before))
[ "$(grep -c ' /api' "$K_LOG")" -gt 0 ] || fail "no request logged"
kubectl --kubeconfig as.kubeconfig get pods -n gen-1 >/dev/null 2>&1 || fail "kubectl as alice failed"
theirs=$(($(grep -c 'as="alice" as-groups=1' "$K_LOG") - before - ours))
[ "$ours" -gt 0 ] && [ "$theirs" -gt 0 ] || fail "impersonation headers: ours $ours, kubectl's $theirs requests"
pass "impersonation: $ours of our requests and $theirs of kubectl's carried Impersonate-User alice and one group"

# A token beside a readable tokenFile: kubectl sends the file's (here the good one), and so must we.
sed '/^  user:$/a\    token: not-the-token' "$K_TOKENFILE_KUBECONFIG" >both.kubeconfig
grep -q "tokenFile" both.kubeconfig || fail "the tokenFile kubeconfig has no tokenFile"
kubectl --kubeconfig both.kubeconfig get pods -n gen-1 >/dev/null 2>&1 || fail "kubectl with token and tokenFile failed"
im_run "$IM_BIN" config -k both.kubeconfig -t swr.example.com/org -n gen-1 -o both.json >out3c 2>&1 ||
  fail "config with token and tokenFile failed: $(tail -2 out3c)"
pass "token beside a readable tokenFile: the file's token is sent, by kubectl and by us"

# A second server with faults: 403 on daemonsets, an expired continue, batch/v1 not served.
start_kube_api F --objects "$FIX/real" --generate 300 --forbid daemonsets --expire-continue 2 --disable-version batch/v1
rc=0
im_run "$IM_BIN" config -k "$F_TOKEN_KUBECONFIG" -t swr.example.com/org -o faults.json --page-size 50 \
  --report faults-audit.json >out4 2>&1 || rc=$?
cat out4 | tail -4
assert_eq "$rc" 3 "faults: exit 3 (a kind could not be listed: the file may miss images)"
grep -q "1 list(s) refused (above): faults.json may miss images; --allow-partial accepts that" out4 ||
  fail "faults: no closing error about the partial listing"
rc=0
im_run "$IM_BIN" config -k "$F_TOKEN_KUBECONFIG" -t swr.example.com/org -o faults.json --page-size 50 \
  --report faults-audit.json --allow-partial >out4 2>&1 || rc=$?
assert_eq "$rc" 0 "faults: exit 0 with --allow-partial (warnings only)"
# The 410 restart drops what the earlier pages gave: as many image references as one unpaged list.
refs() { sed -n 's/.* objects (\([0-9]*\) image references).*/\1/p' "$1" | tail -1; }
grep -q "continue=.* 410" "$F_LOG" || fail "the server never sent 410"
im_run "$IM_BIN" config -k "$F_TOKEN_KUBECONFIG" -t swr.example.com/org -o faults-unpaged.json --page-size 10000 \
  --allow-partial >out4u 2>&1 || fail "unpaged listing failed: $(tail -2 out4u)"
[ -n "$(refs out4)" ] || fail "no image reference count in the log"
assert_eq "$(refs out4)" "$(refs out4u)" "image references after a 410 restart, as in one unpaged list"
# A server URL with a wrong path: every list answers 404. Not "a cluster without workloads".
sed -E "s#(server: '?https://[^' ]*)#\\1/wrong-prefix#" "$F_TOKEN_KUBECONFIG" >wrong-prefix.kubeconfig
grep -q "/wrong-prefix" wrong-prefix.kubeconfig || fail "could not write the wrong-prefix kubeconfig"
rc=0
im_run "$IM_BIN" config -k wrong-prefix.kubeconfig -t swr.example.com/org -o wrong.json >out4b 2>&1 || rc=$?
assert_eq "$rc" 3 "wrong API path: exit 3"
grep -q "serves none of the workload kinds (every list answered 404)" out4b || fail "wrong API path: no clear error: $(tail -2 out4b)"
grep -q "daemonsets: .*Forbidden" out4 || fail "403 on daemonsets not reported"
assert_eq "$(jq -r '.warnings | map(select(startswith("daemonsets"))) | length' faults-audit.json)" 1 "403 listed in the report"
assert_eq "$(jq -r 'has("k8s.gcr.io/prometheus-to-sd:v0.3.1")' faults.json)" false "daemonset images absent (forbidden)"
assert_eq "$(jq -r 'has("docker.io/blang/busybox-bash:latest")' faults.json)" true "cronjob found through batch/v1beta1"
grep -q "continue=.* 410" "$F_LOG" || fail "the server never sent 410"
assert_eq "$(jq '[keys[] | select(startswith("registry.example.com/team-"))] | length' faults.json)" 300 "all 300 deployments after the 410 restart"

# exec credential plugin: run once, cached until expiry, run again after a 401.
mkdir -p bin
cat >bin/get-token <<SH
#!/bin/sh
echo run >>"$IM_WORK/exec-runs"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"2099-01-01T00:00:00Z"}}' "\$(cat "$K_TOKEN_FILE")"
SH
chmod +x bin/get-token
kube_write_kubeconfig exec.kubeconfig "$K_URL" token unused
python3 - "$IM_WORK/exec.kubeconfig" <<'PY'
import sys, re
p = sys.argv[1]
s = open(p).read()
s = re.sub(r"  user:\n    token: .*\n", "  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ./bin/get-token\n      provideClusterInfo: true\n", s)
open(p, "w").write(s)
PY
grep -q "command: ./bin/get-token" exec.kubeconfig || fail "could not write the exec kubeconfig"
rm -f exec-runs
im_run "$IM_BIN" config -k exec.kubeconfig -t swr.example.com/org -o exec.json >out5 2>&1 || true
cmp -s images.json exec.json || fail "exec plugin: different images.json"
assert_eq "$(wc -l <exec-runs)" 1 "exec plugin ran once for 9 concurrent kinds (credential cached)"
# Rotate the server's token: the cached one now gets 401, the plugin runs again and returns the new one.
echo "rotated-token-456" >"$K_TOKEN_FILE"
rm -f exec-runs
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"stale-token"}}' >stale.json
# First answer stale, then fresh: prove the re-run after 401.
cat >bin/get-token <<SH
#!/bin/sh
echo run >>"$IM_WORK/exec-runs"
if [ "\$(wc -l <"$IM_WORK/exec-runs")" = 1 ]; then cat "$IM_WORK/stale.json"; exit 0; fi
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "\$(cat "$K_TOKEN_FILE")"
SH
im_run "$IM_BIN" config -k exec.kubeconfig -t swr.example.com/org -o exec2.json >out6 2>&1 || true
cmp -s images.json exec2.json || fail "exec plugin after 401: different images.json ($(tail -2 out6))"
assert_eq "$(wc -l <exec-runs)" 2 "exec plugin re-run once after the 401 (not once per concurrent request)"

# In-cluster: only -t, the service account from the (overridden) directory.
mkdir -p sa
cp "$K_TOKEN_FILE" sa/token
cp "$KUBE_CA" sa/ca.crt
echo default >sa/namespace
rc=0
KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$K_PORT IMAGE_MIGRATOR_SERVICEACCOUNT_DIR=$IM_WORK/sa \
  im_run "$IM_BIN" config -t swr.example.com/org -o incluster.json >out7 2>&1 || rc=$?
assert_eq "$rc" 3 "in-cluster: same exit code"
cmp -s images.json incluster.json || fail "in-cluster: different images.json ($(tail -2 out7))"
pass "in-cluster service account: identical images.json"

# Conflicting targets are an error naming both sources.
cat >conflict.json <<JSON
{"kind":"List","apiVersion":"v1","items":[
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1","namespace":"c"},"spec":{"containers":[{"name":"a","image":"quay.io/a/tool:1"},{"name":"b","image":"ghcr.io/b/tool:1"}]}}]}
JSON
start_kube_api C --objects "$IM_WORK/conflict.json"
rc=0
im_run "$IM_BIN" config -k "$C_TOKEN_KUBECONFIG" -t swr.example.com/org -o conflict-out.json >out8 2>&1 || rc=$?
assert_eq "$rc" 2 "conflicting targets: exit 2"
grep -q "ghcr.io/b/tool:1.*quay.io/a/tool:1\|quay.io/a/tool:1.*ghcr.io/b/tool:1" out8 || fail "conflict message does not name both: $(cat out8)"
[ ! -e conflict-out.json ] || fail "a conflicting plan still wrote images.json"
im_run "$IM_BIN" config -k "$C_TOKEN_KUBECONFIG" -t swr.example.com/org --flatten none -o conflict-out.json >/dev/null 2>&1
assert_eq "$(jq -r '."ghcr.io/b/tool:1"' conflict-out.json)" "swr.example.com/org/b/tool:1" "--flatten none resolves it"

# Discovery feeds the copy: pods that run images of a real registry, then the copy command.
start_registry src plain
start_registry dst plain
make_layout "$IM_WORK/layout" v1 --layers 2 --layer-size 100000 >/dev/null
seed "$IM_WORK/layout" v1 "$SRC_ADDR/shop/web:1.0"
seed "$IM_WORK/layout" v1 "$SRC_ADDR/shop/api:2"
WEB=$(raw_digest "$SRC_ADDR/shop/web:1.0")
# Workloads pinned by digest too (tag and digest; digest alone): config writes them with the digest on
# both sides, for `rewrite`, and the copy takes that.
cat >real.json <<JSON
{"kind":"List","apiVersion":"v1","items":[
 {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},
  "spec":{"template":{"spec":{"containers":[{"name":"web","image":"$SRC_ADDR/shop/web:1.0"}]}}}},
 {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web-pinned","namespace":"shop"},
  "spec":{"template":{"spec":{"containers":[{"name":"web","image":"$SRC_ADDR/shop/web:1.0@$WEB"}]}}}},
 {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"api","namespace":"shop"},
  "spec":{"template":{"spec":{"containers":[{"name":"api","image":"$SRC_ADDR/shop/api@$WEB"}]}}}}]}
JSON
start_kube_api R --objects "$IM_WORK/real.json"
im_run "$IM_BIN" config -k "$R_TOKEN_KUBECONFIG" -t "$DST_ADDR/migrated" -o discovered.json >/dev/null 2>&1
cat >auth.json <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
im_run "$IM_BIN" --auth auth.json --images discovered.json --log "" >out9 2>&1 || fail "copy of discovered images failed: $(tail -3 out9)"
assert_eq "$(raw_digest "$DST_ADDR/migrated/web:1.0")" "$(raw_digest "$SRC_ADDR/shop/web:1.0")" "discovered image copied, digest preserved"
assert_eq "$(jq -r --arg k "$SRC_ADDR/shop/api@$WEB" '.[$k]' discovered.json)" "$DST_ADDR/migrated/api@$WEB" "config: a digest-pinned image keeps its digest in the target"
grep -q "Images(3) migration finished, 0 images tasks failed, 0 tasks generate failed" out9 ||
  fail "the three discovered images (two of them pinned by digest) did not all copy: $(tail -3 out9)"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$DST_ADDR/v2/migrated/api/manifests/$WEB")" 200 "the image pinned by digest alone is at the destination by digest"
# --with-pull-secrets: the imagePullSecrets of the workloads become auth.json entries (mode 0600).
start_registry psrc htpasswd
seed "$IM_WORK/layout" v1 "$PSRC_ADDR/private/app:1"
dockercfg=$(printf '{"auths":{"%s":{"auth":"%s"}}}' "$PSRC_ADDR" "$(printf 'alice:alicepass' | base64 -w0)" | base64 -w0)
cat >private.json <<JSON
{"kind":"List","apiVersion":"v1","items":[
 {"apiVersion":"v1","kind":"Secret","metadata":{"name":"regcred","namespace":"team"},"type":"kubernetes.io/dockerconfigjson",
  "data":{".dockerconfigjson":"$dockercfg"}},
 {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"app","namespace":"team"},
  "spec":{"template":{"spec":{"imagePullSecrets":[{"name":"regcred"}],"containers":[{"name":"app","image":"$PSRC_ADDR/private/app:1"}]}}}}]}
JSON
start_kube_api S --objects "$IM_WORK/private.json"
im_run "$IM_BIN" config -k "$S_TOKEN_KUBECONFIG" -t "$DST_ADDR/migrated" -o private-images.json \
  --with-pull-secrets secrets-auth.json >ps.out 2>&1 || fail "config --with-pull-secrets failed: $(tail -2 ps.out)"
assert_eq "$(stat -c %a secrets-auth.json)" 600 "pull-secret auth file is mode 0600"
assert_eq "$(jq -r ".\"$PSRC_ADDR\".username" secrets-auth.json)" alice "credentials taken from the pull secret"
grep -q "GET /api/v1/namespaces/team/secrets/regcred" "$S_LOG" || fail "the secret was not read"
! grep -q alicepass ps.out || fail "a password reached the output"
jq --arg s "$PSRC_ADDR" --arg d "$DST_ADDR" '.[$s].insecure = true | .[$d] = {"insecure": true}' secrets-auth.json >copy-auth.json
im_run "$IM_BIN" --auth copy-auth.json --images private-images.json --log "" --no-encrypt-auth >ps-copy.out 2>&1 ||
  fail "copy with the pull-secret credentials failed: $(tail -2 ps-copy.out)"
assert_eq "$(raw_digest "$DST_ADDR/migrated/app:1" none)" "$(raw_digest "$PSRC_ADDR/private/app:1")" "private image copied with the pull secret's credentials"

# rewrite: the cutover patches. The kustomize images list, applied offline by kubectl kustomize to
# the workload's own manifest, points it at the migrated image; kubectl set image commands too.
im_run "$IM_BIN" rewrite -k "$R_TOKEN_KUBECONFIG" --images discovered.json >rewrite.out 2>rewrite.err ||
  fail "rewrite failed: $(cat rewrite.err)"
cat rewrite.out
grep -q "^kubectl -n shop set image deployment/web web=$DST_ADDR/migrated/web:1.0$" rewrite.out || fail "no kubectl set image line"
mkdir -p kz
jq '.items[0]' real.json >kz/deployment.json
{ echo "resources: [deployment.json]"; sed -n '/^images:/,$p' rewrite.out; } >kz/kustomization.yaml
kubectl kustomize kz >kz.out
grep -q "image: $DST_ADDR/migrated/web:1.0" kz.out || fail "kustomize images list does not rewrite: $(grep image: kz.out)"
pass "rewrite: kubectl set image command and a kustomize images list that kubectl kustomize applies"

# The audit can tell what is already migrated (HEAD on every target), and print a table.
im_run "$IM_BIN" config -k "$R_TOKEN_KUBECONFIG" -t "$DST_ADDR/migrated" -o discovered.json --report report.json \
  --audit-table --check-target --auth auth.json >table.txt 2>/dev/null
assert_eq "$(jq -r '.images[0].flags.inTarget' report.json)" true "audit: image already in the target"
grep -q "^$SRC_ADDR/shop/web:1.0 | 1 | 0 | - | - | - | 0 | yes" table.txt || fail "table output: $(cat table.txt)"
pass "audit table printed"
# --audit-table alone prints the table and writes no report; the old --report-format table still
# prints it, with a note that it never changed the file's format.
rm -f report.json
im_run "$IM_BIN" config -k "$R_TOKEN_KUBECONFIG" -t "$DST_ADDR/migrated" -o discovered.json --audit-table >table2.txt 2>/dev/null
grep -q "^$SRC_ADDR/shop/web:1.0 | 1 | 0 |" table2.txt || fail "--audit-table without --report: $(cat table2.txt)"
[ ! -e report.json ] || fail "--audit-table without --report wrote a report"
im_run "$IM_BIN" config -k "$R_TOKEN_KUBECONFIG" -t "$DST_ADDR/migrated" -o discovered.json --report report.json \
  --report-format table >table3.txt 2>table3.err
grep -q "^$SRC_ADDR/shop/web:1.0 | 1 | 0 |" table3.txt || fail "--report-format table no longer prints the table"
jq -e '.images[0]' report.json >/dev/null || fail "--report-format table: the report is not JSON"
grep -q "report-format is deprecated.*--audit-table" table3.err || fail "--report-format table: no deprecation note"
pass "audit table: --audit-table with or without --report; --report-format table deprecated, still works"
echo "test_config: all checks passed"

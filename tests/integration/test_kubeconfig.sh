#!/usr/bin/env bash
# kubeconfig semantics compared with the reference client: for several files merged through
# KUBECONFIG (relative paths, first-file-wins, first current-context), explicit -k, --context, and
# *-data fields, `image-migrator config --print-config` must name the same server, namespace and
# the same CA / client certificate / key / token bytes as `kubectl config view --raw --flatten --minify`.
# Invalid configurations are refused by both.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
command -v kubectl >/dev/null || fail "kubectl is not installed"
export HOME=$IM_WORK/home
mkdir -p "$HOME"
D=$IM_WORK/kc
mkdir -p "$D/a/pki" "$D/b"
for n in ca1 ca2 client; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$n" \
    -keyout "$D/a/pki/$n.key" -out "$D/a/pki/$n.crt" 2>/dev/null
done
cp "$D/a/pki/ca2.crt" "$D/b/ca2.crt"
b64() { base64 -w0 "$1"; }

cat >"$D/a/config" <<YAML
apiVersion: v1
kind: Config
current-context: alpha
clusters:
- name: c-alpha
  cluster: {server: "https://alpha.example.com:6443/", certificate-authority: pki/ca1.crt, tls-server-name: kube.alpha}
- name: c-shared
  cluster: {server: "https://from-a.example.com"}
users:
- name: u-cert
  user: {client-certificate: pki/client.crt, client-key: pki/client.key}
- name: u-shared
  user: {token: token-from-a}
contexts:
- name: alpha
  context: {cluster: c-alpha, user: u-cert, namespace: team-a}
- name: shared
  context: {cluster: c-shared, user: u-shared}
YAML
cat >"$D/b/config" <<YAML
apiVersion: v1
kind: Config
current-context: beta
clusters:
- name: c-shared
  cluster: {server: "https://from-b.example.com"}
- name: c-beta
  cluster: {server: "https://beta.example.com", certificate-authority: ca2.crt, proxy-url: "http://proxy.example.com:3128"}
- name: c-data
  cluster: {server: "https://data.example.com", certificate-authority-data: "$(b64 "$D/a/pki/ca2.crt")"}
users:
- name: u-shared
  user: {token: token-from-b}
- name: u-basic
  user: {username: admin, password: s3cret}
- name: u-data
  user: {client-certificate-data: "$(b64 "$D/a/pki/client.crt")", client-key-data: "$(b64 "$D/a/pki/client.key")"}
- name: u-exec
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: ./bin/get-token, args: [--cluster, beta]}
contexts:
- name: beta
  context: {cluster: c-beta, user: u-basic, namespace: team-b}
- name: data
  context: {cluster: c-data, user: u-data}
- name: exec
  context: {cluster: c-beta, user: u-exec}
- name: insecure
  context: {cluster: c-insecure, user: u-shared}
clusters_extra: ignored
YAML

sha_b64() { # base64 text -> sha256 hex, or null
  if [ -z "$1" ] || [ "$1" = null ]; then echo null; else printf '%s' "$1" | base64 -d | sha256sum | cut -d' ' -f1; fi
}
sha_text() { if [ -z "$1" ] || [ "$1" = null ]; then echo null; else printf '%s' "$1" | sha256sum | cut -d' ' -f1; fi; }

compare() { # LABEL ARGS...: kubectl's flattened view vs our --print-config
  local label=$1
  shift
  local kv ours
  kv=$(kubectl config view --raw --flatten --minify -o json "$@")
  ours=$("$IM_BIN" config --print-config "$@")
  assert_eq "$(jq -r '.server' <<<"$ours")" "$(jq -r '.clusters[0].cluster.server | sub("/+$"; "")' <<<"$kv")" "$label: server"
  assert_eq "$(jq -r '.namespace' <<<"$ours")" "$(jq -r '.contexts[0].context.namespace // "default"' <<<"$kv")" "$label: namespace"
  assert_eq "$(jq -r '.caSha256' <<<"$ours")" "$(sha_b64 "$(jq -r '.clusters[0].cluster["certificate-authority-data"] // ""' <<<"$kv")")" "$label: CA bytes"
  assert_eq "$(jq -r '.clientCertificateSha256' <<<"$ours")" "$(sha_b64 "$(jq -r '.users[0].user["client-certificate-data"] // ""' <<<"$kv")")" "$label: client certificate bytes"
  assert_eq "$(jq -r '.clientKeySha256' <<<"$ours")" "$(sha_b64 "$(jq -r '.users[0].user["client-key-data"] // ""' <<<"$kv")")" "$label: client key bytes"
  assert_eq "$(jq -r '.tokenSha256' <<<"$ours")" "$(sha_text "$(jq -r '.users[0].user.token // ""' <<<"$kv")")" "$label: token"
  assert_eq "$(jq -r '.username' <<<"$ours")" "$(jq -r '.users[0].user.username // ""' <<<"$kv")" "$label: username"
  assert_eq "$(jq -r '.tlsServerName' <<<"$ours")" "$(jq -r '.clusters[0].cluster["tls-server-name"] // ""' <<<"$kv")" "$label: tls-server-name"
  assert_eq "$(jq -r '.proxyURL' <<<"$ours")" "$(jq -r '.clusters[0].cluster["proxy-url"] // ""' <<<"$kv")" "$label: proxy-url"
  assert_eq "$(jq -r '.impersonate' <<<"$ours")" "$(jq -r '.users[0].user.as // ""' <<<"$kv")" "$label: as (impersonation)"
  assert_eq "$(jq -c '.impersonateGroups' <<<"$ours")" "$(jq -c '.users[0].user["as-groups"] // []' <<<"$kv")" "$label: as-groups"
  # kubectl's view shows an exec command as written; client-go resolves a relative command containing
  # a '/' against the directory of the file that defined it (here always b/config) when it runs it.
  local cmd
  cmd=$(jq -r '.users[0].user.exec.command // ""' <<<"$kv")
  [[ "$cmd" == */* && "$cmd" != /* ]] && cmd=$(realpath -m "$D/b/$cmd")
  assert_eq "$(jq -r '.exec.command // ""' <<<"$ours")" "$cmd" "$label: exec command"
}

export KUBECONFIG="$D/a/config:$D/b/config"
compare "merged, current-context from the first file"
compare "merged, --context shared (first file wins)" --context shared
compare "merged, --context beta (path relative to the second file)" --context beta
compare "merged, --context data (*-data fields)" --context data
compare "merged, --context exec (command relative to its file)" --context exec
unset KUBECONFIG
compare "explicit -k" --kubeconfig "$D/b/config"
mkdir -p "$HOME/.kube" && cp "$D/b/config" "$HOME/.kube/config"
sed -i 's#ca2.crt#'"$D"'/b/ca2.crt#' "$HOME/.kube/config"
compare "~/.kube/config" --context beta

# Invalid configurations: both clients refuse.
refuse() { # LABEL FILE OUR-SUBSTRING KUBECTL-SUBSTRING
  local out rc=0
  out=$("$IM_BIN" config --print-config -k "$2" 2>&1) || rc=$?
  assert_eq "$rc" 2 "$1: exit code 2"
  [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "$1: more than one line: $out"
  [[ "$out" == *"$3"* ]] || fail "$1: message lacks '$3': $out"
  # kubectl must refuse it for the same reason, before trying the (unreachable) server.
  local kout
  kout=$(kubectl --kubeconfig "$2" get --raw /version --request-timeout=2s 2>&1) && fail "$1: kubectl accepted it"
  [[ "$kout" == *"$4"* ]] || fail "$1: kubectl failed differently: $kout"
  pass "$1: refused by both ($out)"
}
mk() { printf 'apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster: {server: "https://127.0.0.1:1"}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: %s\n' "$1" >"$D/$2"; echo "$D/$2"; }
refuse "token and basic auth" "$(mk '{token: t, username: a, password: b}' two-methods)" "more than one authentication method" "more than one authentication method"
refuse "certificate without key" "$(mk "{client-certificate: $D/a/pki/client.crt}" nokey)" "client-key" "client-key-data or client-key must be specified"
refuse "gcp auth-provider" "$(mk '{auth-provider: {name: gcp, config: {access-token: ya29.x}}}' gcp)" "gcp auth plugin has been removed" "gcp auth plugin has been removed"
refuse "exec v1alpha1" "$(mk '{exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: x}}' alpha)" "v1alpha1" 'invalid apiVersion "client.authentication.k8s.io/v1alpha1"'
# The same user name twice in one file: kubectl refuses the file (across files the first one wins).
printf 'apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster: {server: "https://127.0.0.1:1"}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: one}\n- name: u\n  user: {token: two}\n' >"$D/dup-user"
refuse "a user name twice" "$D/dup-user" 'users: duplicate name "u"' 'duplicate name "u"'

# Accepted by both: YAML 1.1 booleans, and a token beside a tokenFile that cannot be read (the token wins).
for word in True yes; do
  printf 'apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: %s}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: t}\n' "$word" >"$D/bool-$word"
  kv=$(kubectl --kubeconfig "$D/bool-$word" config view -o json 2>&1) || fail "insecure-skip-tls-verify: $word: kubectl refused it: $kv"
  assert_eq "$(jq -r '.clusters[0].cluster["insecure-skip-tls-verify"]' <<<"$kv")" true "insecure-skip-tls-verify: $word: kubectl reads true"
  assert_eq "$("$IM_BIN" config --print-config -k "$D/bool-$word" | jq -r .insecureSkipTLSVerify)" true "insecure-skip-tls-verify: $word: we read true"
done
printf 'apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: "true"}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: t}\n' >"$D/bool-quoted"
refuse "a quoted boolean" "$D/bool-quoted" "must be true or false, not a quoted string" "cannot unmarshal string"
tf=$(mk "{token: the-token, tokenFile: $D/no-such-token-file}" token-and-file)
compare "token beside an unreadable tokenFile" --kubeconfig "$tf"
kout=$(kubectl --kubeconfig "$tf" get --raw /version --request-timeout=2s 2>&1) || true
[[ "$kout" == *"refused"* ]] || fail "token beside an unreadable tokenFile: kubectl did not go on to the server: $kout"
pass "token beside an unreadable tokenFile: kubectl goes on to the server with the token, and so do we"
compare "impersonation" --kubeconfig "$(mk '{token: t, as: alice, as-groups: [ops, dev]}' as)"
refuse "as-groups without as" "$(mk '{token: t, as-groups: [ops]}' as-groups-only)" 'need "as"' "without impersonating a user"

out=$("$IM_BIN" config --print-config --kubeconfig "$D/a/config" --context nope 2>&1) && fail "unknown context accepted"
[[ "$out" == *'context "nope" does not exist'* ]] || fail "unknown context: $out"
pass "unknown context refused"
echo "test_kubeconfig: all checks passed"

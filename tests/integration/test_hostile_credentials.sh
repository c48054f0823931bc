#!/usr/bin/env bash
# Security, class 3 (issue 17): credentials only where they belong.
# 1. An https registry behind a TLS-terminating proxy that does not send X-Forwarded-Proto (the
#    registry then names its own address with http:// in upload Locations) got the Basic password in
#    cleartext: the "same registry" check compared host:port, not the scheme. The destination here
#    is a real docker-registry with htpasswd behind tests/tools/tls_front.py, which logs any plain
#    HTTP request it receives on its TLS port. The copy must work (the Location is this registry's
#    own, so it is used over https) and no credential may travel in plain HTTP.
# 2. A Docker credential helper and a kubeconfig exec plugin run with our environment, minus
#    IMAGE_MIGRATOR_KEY (the key of auth.json's ciphertext is ours alone).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry back htpasswd
_im_ensure_tls
d=$IM_WORK/front
mkdir -p "$d"
: >"$d/log"
spawn_listener "tls front" "$d" python3 "$IM_REPO_ROOT/tests/tools/tls_front.py" --upstream "$BACK_ADDR" \
  --cert "$IM_WORK/ca/server.crt" --key "$IM_WORK/ca/server.key" --port-file "$d/port" --log "$d/log"
FRONT=127.0.0.1:$(cat "$d/port")
L=$IM_WORK/layout
make_layout "$L" v1 --layers 2 --layer-size 40000 --seed cred >/dev/null
seed "$L" v1 "$SRC_ADDR/team/app:v1"

cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true},
 "$FRONT": {"username": "alice", "password": "alicepass", "ca": "$IM_WORK/ca/ca.crt"}}
JSON
cat >"$IM_WORK/images.json" <<JSON
{"$SRC_ADDR/team/app:v1": "$FRONT/org/app:v1"}
JSON
run_im front --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "" --digest-cache "" --retries 0 \
  --no-encrypt-auth
cat "$IM_WORK/front.out"
cat "$d/log"
if grep -q '^PLAINTEXT .*authorization=yes' "$d/log"; then
  fail "credentials went in plain HTTP: $(grep '^PLAINTEXT' "$d/log" | head -n 1)"
fi
pass "no credential travelled in plain HTTP"
grep -q '^PLAINTEXT' "$d/log" && fail "a plain-HTTP request reached the TLS port: $(grep '^PLAINTEXT' "$d/log" | head -n 1)"
pass "no request at all went to the TLS port in plain HTTP"
grep -q '^TLS PUT /v2/org/app/blobs/uploads/' "$d/log" || fail "the upload did not go through the proxy over TLS"
assert_eq "$rc" 0 "the copy through the proxy works"
IM_CREDS=alice:alicepass same_digest "$SRC_ADDR/team/app:v1" "$BACK_ADDR/org/app:v1" "the image arrived whole"
grep -q 'names its own address with http://' "$IM_WORK/front.out" || fail "the proxy's misconfiguration is not mentioned"
pass "the proxy's plain-http Locations are mentioned once"

# 1b. An https source redirects blob downloads to plain http spelled "HTTP://" (upper case): the
#     redirect is refused as any https -> http one is (the check compared the spelling "http://"; a
#     307 sent the request, and a token POST's refresh token, in cleartext). The plain-http server
#     serves the same image, so a followed redirect would have made the copy succeed.
start_hostile plainsrc "$L" v1
start_hostile tlssrc "$L" v1 --tls "$IM_WORK/ca/server.crt:$IM_WORK/ca/server.key" \
  --redirect-blobs "HTTP://$PLAINSRC_ADDR"
cat >"$IM_WORK/auth-redirect.json" <<JSON
{"$TLSSRC_ADDR": {"ca": "$IM_WORK/ca/ca.crt"}, "$BACK_ADDR": {"insecure": true, "username": "alice", "password": "alicepass"}}
JSON
cat >"$IM_WORK/images-redirect.json" <<JSON
{"$TLSSRC_ADDR/team/app:v1": "$BACK_ADDR/org/redirected:v1"}
JSON
run_im redirect --auth "$IM_WORK/auth-redirect.json" --images "$IM_WORK/images-redirect.json" --log "" \
  --digest-cache "" --retries 0 --no-encrypt-auth
cat "$IM_WORK/redirect.out"
grep -q '/blobs/' "$TLSSRC_HLOG" || fail "the https source was never asked for a blob (the test proves nothing)"
grep -q '/blobs/' "$PLAINSRC_HLOG" && fail "a blob request followed the redirect to plain http: $(grep '/blobs/' "$PLAINSRC_HLOG" | head -n 1)"
pass "no request followed the https -> HTTP:// redirect"
assert_eq "$rc" 1 "the image fails"
grep -q 'redirect from https to plain http' "$IM_WORK/redirect.out" || fail "the failure does not say why"
IM_CREDS=alice:alicepass assert_absent "$BACK_ADDR/org/redirected:v1" "nothing was pushed"

# 2a. A Docker credential helper never sees IMAGE_MIGRATOR_KEY.
mkdir -p "$IM_WORK/bin" "$IM_WORK/dc"
cat >"$IM_WORK/bin/docker-credential-spy" <<SH
#!/bin/sh
read -r url
env >"$IM_WORK/helper.env"
printf '{"ServerURL": "%s", "Username": "alice", "Secret": "alicepass"}\n' "\$url"
SH
chmod +x "$IM_WORK/bin/docker-credential-spy"
printf '{"credHelpers": {"%s": "spy"}}\n' "$BACK_ADDR" >"$IM_WORK/dc/config.json"
# The destination's password comes from the environment: a helper run for the source must not see it.
start_registry dst2 htpasswd
cat >"$IM_WORK/auth-helper.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$BACK_ADDR": {"insecure": true},
 "$DST2_ADDR": {"insecure": true, "username": "alice", "password": "\$DST_PASSWORD"}}
JSON
cat >"$IM_WORK/images-helper.json" <<JSON
{"$SRC_ADDR/team/app:v1": ["$BACK_ADDR/org/helper:v1", "$DST2_ADDR/org/helper:v1"]}
JSON
key=$(openssl rand -base64 32)
PATH=$IM_WORK/bin:$PATH DOCKER_CONFIG=$IM_WORK/dc IMAGE_MIGRATOR_KEY=$key MARKER_VARIABLE=kept DST_PASSWORD=alicepass \
  run_im helper --auth "$IM_WORK/auth-helper.json" --images "$IM_WORK/images-helper.json" --log "" --digest-cache ""
cat "$IM_WORK/helper.out"
assert_eq "$rc" 0 "the copy with the helper's credentials works"
[ -s "$IM_WORK/helper.env" ] || fail "the credential helper did not run"
grep -q '^MARKER_VARIABLE=kept$' "$IM_WORK/helper.env" || fail "the helper did not get the rest of the environment"
grep -q 'IMAGE_MIGRATOR_KEY' "$IM_WORK/helper.env" && fail "the credential helper saw IMAGE_MIGRATOR_KEY"
grep -qF "$key" "$IM_WORK/helper.env" && fail "the credential helper saw the key's value"
grep -q 'DST_PASSWORD' "$IM_WORK/helper.env" && fail "the credential helper saw DST_PASSWORD, a password auth.json reads"
pass "the credential helper got the environment without IMAGE_MIGRATOR_KEY"

# 2b. A kubeconfig exec plugin never sees it either.
source "$IM_REPO_ROOT/tests/kubeapi/kube_lib.sh"
im_on_exit kube_cleanup
kube_setup "$IM_WORK/kube"
start_kube_api K --objects "$IM_REPO_ROOT/tests/data/k8s-objects/real"
cat >"$IM_WORK/bin/get-token" <<SH
#!/bin/sh
env >"$IM_WORK/plugin.env"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "\$(cat "$K_TOKEN_FILE")"
SH
chmod +x "$IM_WORK/bin/get-token"
kube_write_kubeconfig "$IM_WORK/exec.kubeconfig" "$K_URL" token unused
python3 - "$IM_WORK/exec.kubeconfig" "$IM_WORK/bin/get-token" <<'PY'
import sys, re
p, cmd = sys.argv[1], sys.argv[2]
s = open(p).read()
s = re.sub(r"  user:\n    token: .*\n", "  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: " + cmd + "\n", s)
open(p, "w").write(s)
PY
IMAGE_MIGRATOR_KEY=$key MARKER_VARIABLE=kept \
  run_im plugin config -k "$IM_WORK/exec.kubeconfig" -t swr.example.com/org -o "$IM_WORK/discovered.json"
cat "$IM_WORK/plugin.out"
[ -s "$IM_WORK/plugin.env" ] || fail "the exec plugin did not run"
grep -q '^MARKER_VARIABLE=kept$' "$IM_WORK/plugin.env" || fail "the plugin did not get the rest of the environment"
grep -q 'IMAGE_MIGRATOR_KEY' "$IM_WORK/plugin.env" && fail "the exec plugin saw IMAGE_MIGRATOR_KEY"
pass "the exec plugin got the environment without IMAGE_MIGRATOR_KEY"

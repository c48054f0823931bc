#!/usr/bin/env bash
# HTTP proxies (tests/tools/forward_proxy.py, a real forward proxy that logs every request and tunnel):
# the environment (http_proxy, HTTPS_PROXY, NO_PROXY, read by libcurl) and the per-registry "proxy" of
# auth.json. The registries have made-up names only the proxy resolves (its --map), so a copy that
# succeeds went through the proxy; the proxy's log shows which requests did and which did not.
# Also: TLS through a CONNECT tunnel is still verified against the registry's name, a proxy that
# wants credentials gets them from the proxy URL without the password showing in any output, and
# a dead proxy fails fast with one line naming the registry.
#
# Note: for http:// URLs libcurl itself reads only the lower-case http_proxy (the "httpoxy" rule);
# image-migrator copies HTTP_PROXY to http_proxy when only the former is set, as Go tools honour it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
# Only the proxies a scenario sets may apply (to image-migrator, and never to skopeo).
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# start_forward_proxy NAME [forward_proxy.py option...]: exports NAME_PORT and NAME_PLOG (its log,
# "METHOD TARGET STATUS" per line). The process is tracked like the registries: killed on exit.
start_forward_proxy() {
  local name=$1 N d
  shift
  N=$(_im_upper "$name")
  d=$IM_WORK/fwd-$name
  mkdir -p "$d"
  spawn_listener "forward proxy $name" "$d" python3 "$IM_REPO_ROOT/tests/tools/forward_proxy.py" --port 0 \
    --port-file "$d/port" --log "$d/log" "$@"
  _im_export "${N}_PORT" "$(cat "$d/port")"
  _im_export "${N}_PLOG" "$d/log"
}

# px_run NAME AUTH IMAGES [VAR=VALUE...] [-- EXTRA-ARG...]: image-migrator with these auth/images files,
# exactly these environment additions and no retry pass; output in $IM_WORK/NAME.out; sets rc and ms.
# The proxy logs are emptied first, so they hold this run's requests only.
px_run() {
  local name=$1 auth=$2 images=$3 envs=() t0
  shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  : >"$OPEN_PLOG"
  : >"$AUTHP_PLOG"
  t0=$(date +%s%N)
  rc=0
  # --blob-cache "": every run copies the same image anew (into a new repository), and the bytes must
  # travel, through the proxy or not, instead of being mounted from where the last run put them.
  im_run env "${envs[@]}" "$IM_BIN" --auth "$auth" --images "$images" -r 0 --log "" --blob-cache "" "$@" \
    >"$IM_WORK/$name.out" 2>&1 || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  cat "$IM_WORK/$name.out"
}

# count PATTERN FILE: lines of FILE matching the extended regex PATTERN.
count() { grep -Ec -- "$1" "$2" || true; }

# failed_once NAME MSG: exit 1 and exactly one FAILED line; sets REASON to what follows
# "FAILED src -> dst: " (so a name in REASON comes from the error, not from the rule).
failed_once() {
  assert_eq "$rc" 1 "$2: exit code 1"
  assert_eq "$(grep -c 'FAILED ' "$IM_WORK/$1.out")" 1 "$2: exactly one FAILED line"
  REASON=$(grep 'FAILED ' "$IM_WORK/$1.out")
  REASON=${REASON#*: }
}

# ERE-quote a literal (dots in host names).
re() { sed 's/[].[^$*+?(){}|\\/]/\\&/g' <<<"$1"; }

# reason_has MSG PATTERN...: every extended regex PATTERN matches REASON (case-insensitive).
reason_has() {
  local msg=$1 p
  shift
  for p in "$@"; do
    grep -Eqi -- "$p" <<<"$REASON" || fail "$msg (no '$p' in: $REASON)"
  done
  pass "$msg"
}

start_registry src plain
start_registry dst plain
start_registry tok token
start_registry tls tls
sport=${SRC_ADDR#*:}
dport=${DST_ADDR#*:}
tlsport=${TLS_ADDR#*:}
tokport=${TOK_REALM#http://127.0.0.1:}
tokport=${tokport%%/*}
make_layout "$IM_WORK/layout" v1 --layers 2 --layer-size 3000000 --seed proxy >/dev/null
seed "$IM_WORK/layout" v1 "$SRC_ADDR/ns/app:1"
src_digest=$(raw_digest "$SRC_ADDR/ns/app:1")

# The names image-migrator is given; only the proxies know where they are.
SRC_NAME=registry.made-up.invalid:$sport
DST_NAME=mirror.made-up.invalid:$dport
TLS_BAD_NAME=tls.made-up.invalid:$tlsport # resolvable via the proxy, but not a name in the certificate
TLS_NAME=localhost:$tlsport               # in the certificate (DNS:localhost)
map=(--map registry.made-up.invalid=127.0.0.1 --map mirror.made-up.invalid=127.0.0.1
  --map tls.made-up.invalid=127.0.0.1)
PROXY_USER=proxyuser
PROXY_PASS=pr0xy-Secret-$RANDOM$RANDOM
start_forward_proxy open "${map[@]}"
start_forward_proxy authp "${map[@]}" --user "$PROXY_USER:$PROXY_PASS"
OPEN=http://127.0.0.1:$OPEN_PORT
S=$(re "$SRC_NAME")
D=$(re "$DST_NAME")
cd "$IM_WORK"

# ---------------------------------------------------------------- http_proxy from the environment
# Both registries by made-up name; the destination uploads in chunks (POST, PATCH, PUT).
cat >auth-env.json <<JSON
{"$SRC_NAME": {"insecure": true}, "$DST_NAME": {"insecure": true, "chunked": true}}
JSON
echo "{\"$SRC_NAME/ns/app:1\": \"$DST_NAME/ns/env\"}" >images-env.json
px_run env auth-env.json images-env.json "http_proxy=$OPEN"
assert_eq "$rc" 0 "http_proxy: copied between two registries only the proxy can resolve"
assert_eq "$(raw_digest "$DST_ADDR/ns/env:1")" "$src_digest" "http_proxy: digest preserved"
assert_eq "$(count "^GET http://$S/v2/ns/app/blobs/sha256:[0-9a-f]{64} 200$" "$OPEN_PLOG")" 3 \
  "http_proxy: the 3 blobs (config, 2 x 3 MB layers) were downloaded through the proxy"
[ "$(count "^PATCH http://$D/v2/ns/env/blobs/uploads/" "$OPEN_PLOG")" -ge 3 ] ||
  fail "http_proxy: the chunked uploads did not go through the proxy: $(cat "$OPEN_PLOG")"
pass "http_proxy: the chunked uploads (PATCH) went through the proxy"
assert_eq "$(count "^PUT http://$D/v2/ns/env/manifests/1 201$" "$OPEN_PLOG")" 1 \
  "http_proxy: the manifest was pushed through the proxy"
assert_eq "$(grep -Evc -- "^[A-Z]+ http://($S|$D)/" "$OPEN_PLOG" || true)" 0 \
  "http_proxy: every proxied request was a plain-HTTP request to one of the two registries"

# ---------------------------------------------------------------- NO_PROXY
# The destination is 127.0.0.1:PORT and NO_PROXY lists 127.0.0.1: it is reached directly; the
# source (a name only the proxy resolves) still goes through the proxy.
cat >auth-noproxy.json <<JSON
{"$SRC_NAME": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
echo "{\"$SRC_NAME/ns/app:1\": \"$DST_ADDR/ns/noproxy\"}" >images-noproxy.json
px_run noproxy auth-noproxy.json images-noproxy.json "http_proxy=$OPEN" "NO_PROXY=example.com,127.0.0.1"
assert_eq "$rc" 0 "NO_PROXY: copied"
assert_eq "$(raw_digest "$DST_ADDR/ns/noproxy:1")" "$src_digest" "NO_PROXY: digest preserved"
assert_eq "$(count "^GET http://$S/v2/ns/app/blobs/" "$OPEN_PLOG")" 3 "NO_PROXY: the source still went through the proxy"
assert_eq "$(count "127\.0\.0\.1|:$dport" "$OPEN_PLOG")" 0 "NO_PROXY: no destination request went through the proxy"
assert_eq "$(grep -Ec '"PUT /v2/ns/noproxy/manifests/1 HTTP/1.1" 201 .*"image-migrator"$' "$DST_LOG" || true)" 1 \
  "NO_PROXY: the destination registry got the manifest directly"

# ---------------------------------------------------------------- "proxy" in auth.json, source only
cat >auth-src.json <<JSON
{"$SRC_NAME": {"insecure": true, "proxy": "$OPEN"}, "$DST_ADDR": {"insecure": true}}
JSON
echo "{\"$SRC_NAME/ns/app:1\": \"$DST_ADDR/ns/perreg\"}" >images-src.json
px_run perreg-src auth-src.json images-src.json
assert_eq "$rc" 0 "auth.json proxy (source): copied without any proxy variable"
assert_eq "$(raw_digest "$DST_ADDR/ns/perreg:1")" "$src_digest" "auth.json proxy (source): digest preserved"
assert_eq "$(count "^GET http://$S/v2/ns/app/blobs/" "$OPEN_PLOG")" 3 "auth.json proxy (source): source blobs through the proxy"
assert_eq "$(count "127\.0\.0\.1|:$dport" "$OPEN_PLOG")" 0 "auth.json proxy (source): the destination was not proxied"

# ---------------------------------------------------------------- "proxy" in auth.json, token destination
# A token registry's token requests take the registry's route too.
cat >auth-tok.json <<JSON
{"$SRC_ADDR": {"insecure": true},
 "$TOK_ADDR": {"insecure": true, "username": "alice", "password": "alicepass", "proxy": "$OPEN"}}
JSON
echo "{\"$SRC_ADDR/ns/app:1\": \"$TOK_ADDR/ns/perreg\"}" >images-tok.json
px_run perreg-tok auth-tok.json images-tok.json
assert_eq "$rc" 0 "auth.json proxy (token destination): copied"
assert_eq "$(raw_digest "$TOK_ADDR/ns/perreg:1")" "$src_digest" "auth.json proxy (token destination): digest preserved"
T=$(re "$TOK_ADDR")
assert_eq "$(count "^PUT http://$T/v2/ns/perreg/manifests/1 201$" "$OPEN_PLOG")" 1 \
  "auth.json proxy (token destination): manifest pushed through the proxy"
[ "$(count "^GET http://127\.0\.0\.1:$tokport/token\?.* 200$" "$OPEN_PLOG")" -ge 1 ] ||
  fail "auth.json proxy (token destination): no token request through the proxy: $(cat "$OPEN_PLOG")"
pass "auth.json proxy (token destination): the token request went through the proxy too"
assert_eq "$(count ":$sport/" "$OPEN_PLOG")" 0 "auth.json proxy (token destination): the source was not proxied"

# ---------------------------------------------------------------- TLS through CONNECT (HTTPS_PROXY)
cat >auth-tls.json <<JSON
{"$SRC_ADDR": {"insecure": true}, "$TLS_NAME": {"ca": "$TLS_CA"}, "$TLS_BAD_NAME": {"ca": "$TLS_CA"}}
JSON
echo "{\"$SRC_ADDR/ns/app:1\": \"$TLS_NAME/ns/tls\"}" >images-tls.json
px_run tls auth-tls.json images-tls.json "HTTPS_PROXY=$OPEN"
assert_eq "$rc" 0 "HTTPS_PROXY: copied to a TLS registry"
assert_eq "$(raw_digest "$TLS_ADDR/ns/tls:1")" "$src_digest" "HTTPS_PROXY: digest preserved"
[ "$(count "^CONNECT $(re "$TLS_NAME") 200$" "$OPEN_PLOG")" -ge 1 ] ||
  fail "HTTPS_PROXY: no CONNECT tunnel to $TLS_NAME: $(cat "$OPEN_PLOG")"
pass "HTTPS_PROXY: the TLS registry was reached through a CONNECT tunnel"
assert_eq "$(grep -vc "^CONNECT $(re "$TLS_NAME") 200$" "$OPEN_PLOG" || true)" 0 \
  "HTTPS_PROXY: nothing else went through the proxy (no http_proxy: the plain-HTTP source was direct)"

# Through the tunnel the certificate is still checked: without "ca" the copy fails on it...
cat >auth-tls-noca.json <<JSON
{"$SRC_ADDR": {"insecure": true}, "$TLS_NAME": {}}
JSON
echo "{\"$SRC_ADDR/ns/app:1\": \"$TLS_NAME/ns/noca\"}" >images-tls-noca.json
px_run tls-noca auth-tls-noca.json images-tls-noca.json "HTTPS_PROXY=$OPEN"
failed_once tls-noca "HTTPS_PROXY without ca"
reason_has "HTTPS_PROXY without ca: fails on the certificate, naming $TLS_NAME" "$(re "$TLS_NAME")" certificate
[ "$(count "^CONNECT $(re "$TLS_NAME") 200$" "$OPEN_PLOG")" -ge 1 ] || fail "HTTPS_PROXY without ca: no tunnel was opened"
pass "HTTPS_PROXY without ca: the tunnel was open, the client refused the certificate"
assert_absent "$TLS_ADDR/ns/noca:1" "HTTPS_PROXY without ca: nothing pushed"

# ... and it is checked against the registry's name: one the certificate does not have fails, even
# though the proxy connects it to the very same server.
echo "{\"$SRC_ADDR/ns/app:1\": \"$TLS_BAD_NAME/ns/badname\"}" >images-tls-badname.json
px_run tls-badname auth-tls.json images-tls-badname.json "HTTPS_PROXY=$OPEN"
failed_once tls-badname "HTTPS_PROXY, name not in the certificate"
reason_has "HTTPS_PROXY, name not in the certificate: refused, naming $TLS_BAD_NAME" \
  "$(re "$TLS_BAD_NAME")" 'subject name|certificate'
[ "$(count "^CONNECT $(re "$TLS_BAD_NAME") 200$" "$OPEN_PLOG")" -ge 1 ] ||
  fail "HTTPS_PROXY, name not in the certificate: no tunnel was opened"
pass "HTTPS_PROXY, name not in the certificate: the tunnel was open, the name check failed"
assert_absent "$TLS_ADDR/ns/badname:1" "HTTPS_PROXY, name not in the certificate: nothing pushed"

# ---------------------------------------------------------------- a proxy that wants credentials
# user:password in the proxy URL: absolute-URI requests (plain source) and CONNECT (TLS destination)
# both carry them; the password shows in no output, log file or report.
AUTHP=http://$PROXY_USER:$PROXY_PASS@127.0.0.1:$AUTHP_PORT
cat >auth-authp.json <<JSON
{"$SRC_NAME": {"insecure": true, "proxy": "$AUTHP"}, "$TLS_NAME": {"ca": "$TLS_CA", "proxy": "$AUTHP"}}
JSON
echo "{\"$SRC_NAME/ns/app:1\": \"$TLS_NAME/ns/authp\"}" >images-authp.json
px_run authp auth-authp.json images-authp.json -- -v --log "$IM_WORK/authp.log" --report "$IM_WORK/authp.report"
assert_eq "$rc" 0 "proxy with credentials: copied"
assert_eq "$(raw_digest "$TLS_ADDR/ns/authp:1")" "$src_digest" "proxy with credentials: digest preserved"
assert_eq "$(count "^GET http://$S/v2/ns/app/blobs/.* 200$" "$AUTHP_PLOG")" 3 \
  "proxy with credentials: source blobs through it (absolute-URI requests)"
[ "$(count "^CONNECT $(re "$TLS_NAME") 200$" "$AUTHP_PLOG")" -ge 1 ] ||
  fail "proxy with credentials: no CONNECT tunnel: $(cat "$AUTHP_PLOG")"
pass "proxy with credentials: destination through a CONNECT tunnel"
assert_eq "$(count " 407$" "$AUTHP_PLOG")" 0 "proxy with credentials: no request was refused by the proxy"
no_leak "$PROXY_PASS" "$PROXY_USER" "$IM_WORK/authp.out" "$IM_WORK/authp.log" "$IM_WORK/authp.report"
pass "proxy with credentials: the password is in no output, log or report (-v)"

# A wrong password: the proxy answers 407, to plain requests (a proxied source) as to a CONNECT
# (a proxied TLS destination); each copy fails once, naming the registry and 407, quickly, and
# without showing the password.
WRONG_PASS=wr0ng-Pass-$RANDOM$RANDOM
WRONG=http://$PROXY_USER:$WRONG_PASS@127.0.0.1:$AUTHP_PORT
cat >auth-wrong.json <<JSON
{"$SRC_NAME": {"insecure": true, "proxy": "$WRONG"}, "$SRC_ADDR": {"insecure": true},
 "$DST_ADDR": {"insecure": true}, "$TLS_NAME": {"ca": "$TLS_CA", "proxy": "$WRONG"}}
JSON
echo "{\"$SRC_NAME/ns/app:1\": \"$DST_ADDR/ns/wrong\"}" >images-wrong-src.json
echo "{\"$SRC_ADDR/ns/app:1\": \"$TLS_NAME/ns/wrong\"}" >images-wrong-dst.json
for side in src dst; do
  px_run "wrong-$side" auth-wrong.json "images-wrong-$side.json" -- -v
  what="proxy with a wrong password ($side)"
  failed_once "wrong-$side" "$what"
  name=$SRC_NAME
  [ "$side" == dst ] && name=$TLS_NAME
  reason_has "$what: the reason names $name and 407" "$(re "$name")" '\b407\b'
  [ "$(count " 407$" "$AUTHP_PLOG")" -ge 1 ] || fail "$what: the proxy refused nothing: $(cat "$AUTHP_PLOG")"
  assert_eq "$(count " 200$" "$AUTHP_PLOG")" 0 "$what: the proxy let nothing through"
  [ "$ms" -lt 20000 ] || fail "$what: took $ms ms"
  no_leak "$WRONG_PASS" "$PROXY_USER" "$IM_WORK/wrong-$side.out"
  assert_eq "$(grep -c 'retrying' "$IM_WORK/wrong-$side.out" || true)" 0 "$what: refused credentials are not sent again"
  pass "$what: failed in $ms ms, password not shown"
done

# ---------------------------------------------------------------- a dead proxy
# Nothing listens on the proxy's port: a fast failure naming the registry, not a hang.
dead_port=$(free_port)
DEAD_PASS=d3ad-Pass-$RANDOM$RANDOM
cat >auth-dead.json <<JSON
{"$SRC_NAME": {"insecure": true, "proxy": "http://$PROXY_USER:$DEAD_PASS@127.0.0.1:$dead_port"}, "$DST_ADDR": {"insecure": true}}
JSON
echo "{\"$SRC_NAME/ns/app:1\": \"$DST_ADDR/ns/dead\"}" >images-dead.json
px_run dead auth-dead.json images-dead.json
failed_once dead "dead proxy"
reason_has "dead proxy: the reason names the registry and the unreachable proxy port" "registry $S" "\b$dead_port\b"
[ "$ms" -lt 20000 ] || fail "dead proxy: took $ms ms"
pass "dead proxy: failed in $ms ms"
no_leak "$DEAD_PASS" "$PROXY_USER" "$IM_WORK/dead.out"
pass "dead proxy: its password is not shown"
assert_absent "$DST_ADDR/ns/dead:1" "dead proxy: nothing pushed"

# ---------------------------------------------------------------- a malformed proxy URL
# A proxy URL libcurl cannot use is a configuration error found when auth.json is read (exit 2, the
# key named), and libcurl's messages, which quote the URL, never carry its password (HTTPS_PROXY).
BAD_PASS=b4d-Pass-$RANDOM$RANDOM
for bad in "http://$PROXY_USER:$BAD_PASS@[bad" "ftp://$PROXY_USER:$BAD_PASS@127.0.0.1:3128" "http://$PROXY_USER:$BAD_PASS@127.0.0.1:99999" \
  "http://$PROXY_USER:$BAD_PASS#x@127.0.0.1:3128"; do
  cat >auth-bad.json <<JSON
{"$SRC_ADDR": {"insecure": true, "proxy": "$bad"}, "$DST_ADDR": {"insecure": true}}
JSON
  echo "{\"$SRC_ADDR/ns/app:1\": \"$DST_ADDR/ns/bad\"}" >images-bad.json
  px_run bad auth-bad.json images-bad.json -- --log "$IM_WORK/bad.log"
  assert_eq "$rc" 2 "malformed proxy URL (${bad%%:*}...): a configuration error"
  grep -q "auth-bad.json.*$SRC_ADDR.*\"proxy\" is not a proxy URL" "$IM_WORK/bad.out" || fail "the error does not name the file, key and field"
  assert_eq "$(wc -l <"$IM_WORK/bad.out")" 1 "malformed proxy URL: one line"
  no_leak "$BAD_PASS" "$PROXY_USER" "$IM_WORK/bad.out"
done
pass "malformed proxy URLs in auth.json: exit 2, one line, password not shown"
cat >auth-plain.json <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
echo "{\"$SRC_ADDR/ns/app:1\": \"$DST_ADDR/ns/bad\"}" >images-bad.json
px_run badenv auth-plain.json images-bad.json "http_proxy=http://$PROXY_USER:$BAD_PASS@[bad" -- --log "$IM_WORK/badenv.log" --report "$IM_WORK/badenv.report"
assert_eq "$rc" 1 "malformed http_proxy in the environment: the copy fails"
assert_eq "$(grep -c 'retrying' "$IM_WORK/badenv.out" || true)" 0 "malformed http_proxy: not retried"
no_leak "$BAD_PASS" "$PROXY_USER" "$IM_WORK/badenv.out" "$IM_WORK/badenv.log" "$IM_WORK/badenv.report"
pass "malformed http_proxy: password in no output, log or report"

# ---------------------------------------------------------------- HTTP_PROXY in upper case
# libcurl alone would ignore it for http:// URLs; image-migrator honours it as Go tools do.
px_run upper auth-env.json images-env.json "HTTP_PROXY=$OPEN"
assert_eq "$rc" 0 "HTTP_PROXY (upper case): copied through the proxy"
[ "$(count "^(GET|HEAD) http://$(re "$SRC_NAME")/" "$OPEN_PLOG")" -ge 1 ] || fail "HTTP_PROXY: nothing went through the proxy"
pass "HTTP_PROXY: the requests went through the proxy"

echo "test_proxy: all checks passed"

#!/usr/bin/env bash
# TLS client certificates per registry (auth.json "cert"/"key", with "ca" added to the system
# store): a registry that requires a client certificate accepts the copy with one and refuses it,
# with a clear one-line failure, without.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

pki=$IM_WORK/client-pki
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=client-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=migrator" \
  -keyout "$pki/client.key" -out "$pki/client.csr" 2>/dev/null
openssl x509 -req -in "$pki/client.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
  -out "$pki/client.pem" 2>/dev/null

start_registry src plain
IM_CLIENT_CERT=$pki/client.pem IM_CLIENT_KEY=$pki/client.key start_registry dst tls "REGISTRY_HTTP_TLS_CLIENTCAS=[$pki/ca.pem]"
make_layout "$IM_WORK/layout" v1 --layers 1 --layer-size 100000 >/dev/null
seed "$IM_WORK/layout" v1 "$SRC_ADDR/ns/app:1"
echo "{\"$SRC_ADDR/ns/app:1\": \"$DST_ADDR/ns/app\"}" >"$IM_WORK/images.json"

cat >"$IM_WORK/auth-nocert.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"ca": "$DST_CA"}}
JSON
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth-nocert.json" --images "$IM_WORK/images.json" -r 0 --log "" >"$IM_WORK/out1" 2>&1 || rc=$?
cat "$IM_WORK/out1"
assert_eq "$rc" 1 "without a client certificate: refused"
assert_eq "$(grep -c FAILED "$IM_WORK/out1")" 1 "one FAILED line"

cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"ca": "$DST_CA", "cert": "$pki/client.pem", "key": "$pki/client.key"}}
JSON
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" -r 0 --log "" >"$IM_WORK/out2" 2>&1 || rc=$?
cat "$IM_WORK/out2"
assert_eq "$rc" 0 "with the client certificate: copied"
rc=0
im_run "$IM_BIN" verify --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" >"$IM_WORK/verify" 2>&1 || rc=$?
cat "$IM_WORK/verify"
assert_eq "$rc" 0 "verify (HEAD with the client certificate): digests equal"
grep -q "^SAME " "$IM_WORK/verify" || fail "verify does not say SAME"
echo "test_client_cert: all checks passed"

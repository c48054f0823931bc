#!/usr/bin/env bash
# TLS against real registries with a test CA: verification with "ca" works, without it the copy
# fails on the certificate (once, nothing pushed), skipTLSVerify works but warns, "insecure" (plain
# HTTP) against an HTTPS port fails clearly, and TLS + htpasswd credentials work together.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

# failed_once NAME MSG: exit 1, exactly one FAILED line (one line, not retried in later passes);
# sets REASON to what follows "FAILED src -> dst: ".
failed_once() {
  assert_eq "$rc" 1 "$2: exit code 1"
  assert_eq "$(grep -c 'FAILED ' "$IM_WORK/$1.out")" 1 "$2: exactly one FAILED line"
  REASON=$(grep 'FAILED ' "$IM_WORK/$1.out")
  REASON=${REASON#*: }
}

start_registry src tls
start_registry dst tls
L=$IM_WORK/layout
make_layout "$L" single --layers 2 --layer-size 200000 --seed tls-single >/dev/null
make_layout "$L" multi --layers 2 --layer-size 100000 --platforms linux/amd64,linux/arm64 --seed tls-multi >/dev/null
seed "$L" single "$SRC_ADDR/ns/app:1.0"
seed "$L" multi "$SRC_ADDR/ns/multi:v1"
pass "seeded 2 images over TLS"

# ---------------------------------------------------------------- verified with the test CA
cat >"$IM_WORK/auth-ca.json" <<JSON
{"$SRC_ADDR": {"ca": "$SRC_CA"}, "$DST_ADDR": {"ca": "$DST_CA"}}
JSON
cat >"$IM_WORK/images-ca.json" <<JSON
{"$SRC_ADDR/ns/app:1.0": "$DST_ADDR/team/app", "$SRC_ADDR/ns/multi:v1": "$DST_ADDR/team/multi"}
JSON
run_im ca --auth "$IM_WORK/auth-ca.json" --images "$IM_WORK/images-ca.json" --log ""
cat "$IM_WORK/ca.out"
assert_eq "$rc" 0 "ca: exit code 0"
same_digest "$SRC_ADDR/ns/app:1.0" "$DST_ADDR/team/app:1.0" "ca: single-arch digest preserved"
same_digest "$SRC_ADDR/ns/multi:v1" "$DST_ADDR/team/multi:v1" "ca: 2-platform index digest preserved"
pull_all_platforms "$DST_ADDR/team/multi:v1"
pass "ca: both platforms pull back with verified blobs"
if grep -Eqi 'tls verification|skipTLSVerify' "$IM_WORK/ca.out"; then
  fail "ca: a TLS-verification warning although verification is on: $(grep -Ei 'tls verification|skipTLSVerify' "$IM_WORK/ca.out")"
fi
pass "ca: no TLS-verification warning when verifying"

# ---------------------------------------------------------------- without the CA
# Destination without "ca" (source verified): the copy must stop at the destination's certificate.
cat >"$IM_WORK/auth-noca-dst.json" <<JSON
{"$SRC_ADDR": {"ca": "$SRC_CA"}, "$DST_ADDR": {}}
JSON
echo "{\"$SRC_ADDR/ns/app:1.0\": \"$DST_ADDR/ns/noca\"}" >"$IM_WORK/images-noca.json"
run_im noca-dst --auth "$IM_WORK/auth-noca-dst.json" --images "$IM_WORK/images-noca.json" -r 2 --log ""
cat "$IM_WORK/noca-dst.out"
failed_once noca-dst "destination without ca"
[[ "$REASON" == *"$DST_ADDR"* ]] || fail "destination without ca: the reason does not name $DST_ADDR: $REASON"
grep -Eqi 'certificate' <<<"$REASON" || fail "destination without ca: the reason does not mention the certificate: $REASON"
pass "destination without ca: the reason names $DST_ADDR and the certificate problem"
[ "$ms" -lt 10000 ] || fail "destination without ca: took ${ms} ms"
assert_absent "$DST_ADDR/ns/noca:1.0" "destination without ca: nothing pushed"
assert_eq "$(grep -E '"[A-Z]+ /v2/ns/noca/' "$DST_LOG" | grep -c '"image-migrator"$' || true)" 0 \
  "destination without ca: no request of image-migrator reached the destination registry"

# Neither side has "ca": the source's certificate is the first to fail.
cat >"$IM_WORK/auth-noca.json" <<JSON
{"$SRC_ADDR": {}, "$DST_ADDR": {}}
JSON
run_im noca --auth "$IM_WORK/auth-noca.json" --images "$IM_WORK/images-noca.json" -r 2 --log ""
cat "$IM_WORK/noca.out"
failed_once noca "no ca at all"
[[ "$REASON" == *"$SRC_ADDR"* ]] || fail "no ca at all: the reason does not name $SRC_ADDR: $REASON"
grep -Eqi 'certificate' <<<"$REASON" || fail "no ca at all: the reason does not mention the certificate: $REASON"
pass "no ca at all: the reason names $SRC_ADDR and the certificate problem"
assert_absent "$DST_ADDR/ns/noca:1.0" "no ca at all: nothing pushed"

# ---------------------------------------------------------------- skipTLSVerify
cat >"$IM_WORK/auth-skip.json" <<JSON
{"$SRC_ADDR": {"skipTLSVerify": true}, "$DST_ADDR": {"skipTLSVerify": true}}
JSON
echo "{\"$SRC_ADDR/ns/multi:v1\": \"$DST_ADDR/ns/skip\"}" >"$IM_WORK/images-skip.json"
run_im skip --auth "$IM_WORK/auth-skip.json" --images "$IM_WORK/images-skip.json" --log "$IM_WORK/skip.log"
cat "$IM_WORK/skip.out"
assert_eq "$rc" 0 "skipTLSVerify: exit code 0"
same_digest "$SRC_ADDR/ns/multi:v1" "$DST_ADDR/ns/skip:v1" "skipTLSVerify: digest preserved"
for addr in "$SRC_ADDR" "$DST_ADDR"; do
  grep -Ei 'tls verification.*(off|disabled)|(not|no longer) verif|skipTLSVerify' "$IM_WORK/skip.out" | grep -qF "$addr" ||
    fail "skipTLSVerify: no warning that TLS verification is off for $addr"
done
pass "skipTLSVerify: warns that TLS verification is off, naming both registries"
grep -Eqi 'tls verification.*(off|disabled)|(not|no longer) verif|skipTLSVerify' "$IM_WORK/skip.log" ||
  fail "skipTLSVerify: the warning is missing from the log file"
pass "skipTLSVerify: the warning is in the log file too"

# ---------------------------------------------------------------- TLS + htpasswd
start_registry hdst tls-htpasswd
cat >"$IM_WORK/auth-htpasswd.json" <<JSON
{
  "$SRC_ADDR": {"ca": "$SRC_CA"},
  "$HDST_ADDR": {"username": "alice", "password": "alicepass", "ca": "$HDST_CA"}
}
JSON
echo "{\"$SRC_ADDR/ns/multi:v1\": \"$HDST_ADDR/team/multi\"}" >"$IM_WORK/images-htpasswd.json"
run_im htpasswd --auth "$IM_WORK/auth-htpasswd.json" --images "$IM_WORK/images-htpasswd.json" \
  --log "$IM_WORK/htpasswd.log"
cat "$IM_WORK/htpasswd.out"
assert_eq "$rc" 0 "tls-htpasswd: exit code 0"
same_digest "$SRC_ADDR/ns/multi:v1" "$HDST_ADDR/team/multi:v1" "tls-htpasswd: digest preserved"
pull_all_platforms "$HDST_ADDR/team/multi:v1"
pass "tls-htpasswd: both platforms pull back with verified blobs"
if grep -qF alicepass "$IM_WORK/htpasswd.out" "$IM_WORK/htpasswd.log"; then
  fail "tls-htpasswd: the password appears in the output"
fi
pass "tls-htpasswd: no password in the output or the log file"

# ---------------------------------------------------------------- "insecure" (plain HTTP) against HTTPS
# wrong_scheme NAME LABEL AUTH_JSON DST_ADDR REGEX: copying ns/app:1.0 to DST_ADDR/ns/NAME with that
# auth file fails once, quickly, with a reason that names DST_ADDR and matches REGEX; nothing pushed.
wrong_scheme() {
  local name=$1 label=$2 auth=$3 dst=$4 regex=$5
  echo "$auth" >"$IM_WORK/auth-$name.json"
  echo "{\"$SRC_ADDR/ns/app:1.0\": \"$dst/ns/$name\"}" >"$IM_WORK/images-$name.json"
  run_im "$name" --auth "$IM_WORK/auth-$name.json" --images "$IM_WORK/images-$name.json" -r 0 --log ""
  cat "$IM_WORK/$name.out"
  failed_once "$name" "$label"
  [[ "$REASON" == *"$dst"* ]] || fail "$label: the reason does not name $dst: $REASON"
  grep -Eqi -- "$regex" <<<"$REASON" || fail "$label: the reason does not match /$regex/: $REASON"
  pass "$label: the reason names $dst and matches /$regex/"
  [ "$ms" -lt 10000 ] || fail "$label: took ${ms} ms"
  assert_absent "$dst/ns/$name:1.0" "$label: nothing pushed"
}
# "insecure": true for a registry that speaks HTTPS (SWR's documentation writes it so): spoken to over
# https without verifying the certificate, said once per registry (c4e1e45 failed every image: "the
# registry speaks HTTPS, but the auth file says insecure").
echo "{\"$SRC_ADDR\": {\"ca\": \"$SRC_CA\"}, \"$DST_ADDR\": {\"insecure\": true, \"username\": \"alice\", \"password\": \"alicepass\"}}" \
  >"$IM_WORK/auth-insecure-https.json"
echo "{\"$SRC_ADDR/ns/app:1.0\": \"$DST_ADDR/ns/insecure:1.0\", \"$SRC_ADDR/ns/multi:v1\": \"$DST_ADDR/ns/insecure-multi:v1\"}" \
  >"$IM_WORK/images-insecure-https.json"
run_im insecure-https --auth "$IM_WORK/auth-insecure-https.json" --images "$IM_WORK/images-insecure-https.json" -r 0 --log ""
cat "$IM_WORK/insecure-https.out"
assert_eq "$rc" 0 "\"insecure\": true against an HTTPS registry: copied"
assert_eq "$(grep -c "registry $DST_ADDR: \"insecure\": true, and it speaks HTTPS: spoken to over https without verifying" \
  "$IM_WORK/insecure-https.out")" 1 "... said once for the registry"
if grep -qF alicepass "$IM_WORK/insecure-https.out"; then fail "the password appears in the output"; fi
same_digest "$SRC_ADDR/ns/app:1.0" "$DST_ADDR/ns/insecure:1.0" "\"insecure\" over https: digest preserved"
same_digest "$SRC_ADDR/ns/multi:v1" "$DST_ADDR/ns/insecure-multi:v1" "\"insecure\" over https: index digest preserved"

# ---------------------------------------------------------------- HTTPS (no "insecure") against plain HTTP
start_registry pdst plain
wrong_scheme nottls "HTTPS against plain HTTP" "{\"$SRC_ADDR\": {\"ca\": \"$SRC_CA\"}}" "$PDST_ADDR" '"insecure": true'

echo "test_tls: all checks passed"

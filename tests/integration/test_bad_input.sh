#!/usr/bin/env bash
# Bad input: every configuration or usage error exits 2 with exactly one line on stderr that names
# the file (with line:col for syntax errors, the key for semantic ones), writes nothing and never
# crashes; a broken rule is counted while the good rules still run; unknown hosts, closed ports and
# missing tags fail once, quickly, naming the registry; --write-failed lists the failed images as an
# images file that reruns just them; credentials never appear in any output.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
unset UNSET_VAR_X

# run_im NAME ARGS...: runs image-migrator, stdout to $IM_WORK/NAME.stdout, stderr to
# $IM_WORK/NAME.err; sets rc and ms.
run_im() {
  local name=$1 t0
  shift
  t0=$(date +%s%N)
  rc=0
  im_run "$IM_BIN" "$@" >"$IM_WORK/$name.stdout" 2>"$IM_WORK/$name.err" || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
}

# no_crash NAME: no sign of an uncaught exception, abort or sanitizer report in NAME's output.
no_crash() {
  if grep -Eqi 'terminate called|what\(\)|Aborted|core dumped|Segmentation|internal error|AddressSanitizer|runtime error' \
    "$IM_WORK/$1.stdout" "$IM_WORK/$1.err"; then
    fail "$1: crash or internal error: $(cat "$IM_WORK/$1.err")"
  fi
}

# config_error NAME PATTERN ARGS...: image-migrator ARGS exits 2 with exactly one line on stderr,
# "image-migrator: " + something matching the extended regex PATTERN; nothing on stdout; the log
# file it was given is not created (a configuration error stops the run before anything is written).
config_error() {
  local name=$1 pattern=$2 msg
  shift 2
  run_im "$name" "$@" --log "$IM_WORK/$name.log"
  msg=$(cat "$IM_WORK/$name.err")
  [ "$rc" == 2 ] || fail "$name: exit code $rc, expected 2 (stderr: $msg)"
  no_crash "$name"
  [ "$(wc -l <"$IM_WORK/$name.err")" == 1 ] || fail "$name: expected exactly one line on stderr, got: $msg"
  [ ! -s "$IM_WORK/$name.stdout" ] || fail "$name: unexpected output on stdout: $(cat "$IM_WORK/$name.stdout")"
  [[ "$msg" == "image-migrator: "* ]] || fail "$name: the message does not start with 'image-migrator: ': $msg"
  grep -Eq -- "$pattern" <<<"$msg" || fail "$name: the message does not match /$pattern/: $msg"
  [ ! -e "$IM_WORK/$name.log" ] || fail "$name: the log file was created although the configuration is invalid"
  pass "$name: exit 2, one line: $msg"
}

# re STRING: STRING with the extended-regex metacharacters escaped.
re() { sed 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$1"; }

C=$IM_WORK/cfg
mkdir -p "$C"
printf '{}\n' >"$C/auth.json"
printf '{"reg.example:5000/ns/app:1": "reg.example:5001/ns/app"}\n' >"$C/images.json"

# ---------------------------------------------------------------- syntax errors (file:line:col)
# A missing comma: the unexpected token is the string that starts at line 3, column 3.
printf '{\n  "reg.example:5000/ns/a:1": "reg.example:5001/ns/a"\n  "reg.example:5000/ns/b:1": "reg.example:5001/ns/b"\n}\n' \
  >"$C/missing-comma.json"
config_error bad-json-comma "^image-migrator: $(re "$C/missing-comma.json"):3:[0-9]+: " \
  --auth "$C/auth.json" --images "$C/missing-comma.json"
col=$(sed -E 's/^[^:]*: [^:]*:3:([0-9]+):.*/\1/' "$IM_WORK/bad-json-comma.err")
if ! [ "$col" -ge 3 ] 2>/dev/null || ! [ "$col" -le 27 ]; then
  fail "bad-json-comma: column $col is not within the offending token (3-27)"
fi
pass "bad-json-comma: column $col points into the offending token"

# A trailing comma: the unexpected '}' is at line 3, column 1.
printf '{\n  "reg.example:5000/ns/a:1": "reg.example:5001/ns/a",\n}\n' >"$C/trailing-comma.json"
config_error bad-json-trailing "^image-migrator: $(re "$C/trailing-comma.json"):3:1: " \
  --auth "$C/auth.json" --images "$C/trailing-comma.json"

# YAML: a second ': ' on line 2; the offending ':' is at column 25.
printf '"reg.example:5000/ns/a:1": "reg.example:5001/ns/a"\nreg.example:5000/ns/b:1: reg.example:5001/ns/b: x\n' \
  >"$C/images.yaml"
config_error bad-yaml "^image-migrator: $(re "$C/images.yaml"):2:[0-9]+: " --auth "$C/auth.json" --images "$C/images.yaml"
col=$(sed -E 's/^[^:]*: [^:]*:2:([0-9]+):.*/\1/' "$IM_WORK/bad-yaml.err")
assert_eq "$col" 47 "bad-yaml: column points at the second ': ' of line 2"

# ---------------------------------------------------------------- wrong shapes and types
printf '["reg.example:5000/ns/app:1", "reg.example:5001/ns/app"]\n' >"$C/array.json"
config_error images-array "$(re "$C/array.json")[: ].*(object|array)" --auth "$C/auth.json" --images "$C/array.json"

printf '{"reg.example:5000": {"username": "alice", "password": "alicepass", "insecure": "maybe"}}\n' \
  >"$C/auth-type.json"
config_error auth-wrong-type "$(re "$C/auth-type.json").*reg\.example:5000.*insecure" \
  --auth "$C/auth-type.json" --images "$C/images.json"
if grep -q alicepass "$IM_WORK/auth-wrong-type.err"; then fail "auth-wrong-type: the message shows the password"; fi

printf '{"reg.example:5000": {"username": "alice", "passwd": "alicepass", "insecure": true}}\n' >"$C/auth-unknown.json"
config_error auth-unknown-field "$(re "$C/auth-unknown.json").*reg\.example:5000.*passwd" \
  --auth "$C/auth-unknown.json" --images "$C/images.json"
if grep -q alicepass "$IM_WORK/auth-unknown-field.err"; then fail "auth-unknown-field: the message shows the password"; fi

# shellcheck disable=SC2016 # a literal $UNSET_VAR_X for image-migrator to expand
printf '{"reg.example:5000": {"username": "alice", "password": "$UNSET_VAR_X", "insecure": true}}\n' >"$C/auth-env.json"
# The key, the field and the variable to export.
config_error auth-unset-env "$(re "$C/auth-env.json").*reg\.example:5000.*password: environment variable UNSET_VAR_X is not set" \
  --auth "$C/auth-env.json" --images "$C/images.json"
# shellcheck disable=SC2016
printf '{"reg.example:5000": {"username": "alice", "password": "$K9QX7TZ2", "insecure": true}}\n' >"$C/auth-env2.json"
# But a password field whose value may be a generated password that starts with '$' is not printed.
config_error auth-unset-env-secret "$(re "$C/auth-env2.json").*reg\.example:5000.*password: reads as an environment variable reference" \
  --auth "$C/auth-env2.json" --images "$C/images.json"
grep -q K9QX7TZ2 "$IM_WORK/auth-unset-env-secret.err" && fail "auth-unset-env-secret: the message shows the value"

# A key twice: JSON parsers keep the last one, which would drop a rule or a registry's credentials
# without a word.
printf '{\n  "reg.example:5000/ns/a:1": "reg.example:5001/ns/a",\n  "reg.example:5000/ns/a:1": "reg.example:5001/ns/b"\n}\n' \
  >"$C/dup.json"
config_error images-duplicate-key "$(re "$C/dup.json"): key \"reg\.example:5000/ns/a:1\" appears twice" \
  --auth "$C/auth.json" --images "$C/dup.json"
printf 'reg.example:5000:\n  username: u\n  password: secretpw1\n  username: v\n' >"$C/dup-auth.yaml"
config_error auth-duplicate-key "$(re "$C/dup-auth.yaml"):4: key \"username\" appears twice" \
  --auth "$C/dup-auth.yaml" --images "$C/images.json"
grep -q secretpw1 "$IM_WORK/auth-duplicate-key.err" && fail "auth-duplicate-key: the password is in the message"

# --config: one file with both sections; anything else in it, or --auth/--images next to it, is an error.
printf '{"auths": {}, "images": {"reg.example:5000/ns/a:1": "reg.example:5001/ns/a"}}\n' >"$C/config-typo.json"
config_error config-unknown-key "$(re "$C/config-typo.json"): unknown key \"auths\"" --config "$C/config-typo.json"
printf '{"auth": {}, "images": {"reg.example:5000/ns/a:1": "reg.example:5001/ns/a"}}\n' >"$C/config.json"
config_error config-and-auth "--config .*not both" --config "$C/config.json" --auth "$C/auth.json"
config_error config-and-images "--config .*not both" --config "$C/config.json" --images "$C/images.json"
config_error config-as-images "$(re "$C/config.json"): .*--config file" --auth "$C/auth.json" --images "$C/config.json"

# ---------------------------------------------------------------- files and flags
config_error images-missing "$(re "$C/no-such-images.json")" --auth "$C/auth.json" --images "$C/no-such-images.json"
# --report is written at the end of the run: a path that cannot be written fails before the copying.
config_error report-dir-missing "--report $(re "$C/no-such-dir/report.json"): directory $(re "$C/no-such-dir") does not exist" \
  --auth "$C/auth.json" --images "$C/images.json" --report "$C/no-such-dir/report.json"
config_error report-is-dir "$(re "$C"): is a directory" --auth "$C/auth.json" --images "$C/images.json" --report "$C"
config_error report-empty "--report needs a file name" --auth "$C/auth.json" --images "$C/images.json" --report ""
config_error write-failed-empty "--write-failed needs a file name" --auth "$C/auth.json" --images "$C/images.json" --write-failed ""
config_error unknown-flag "frobnicate" --auth "$C/auth.json" --images "$C/images.json" --frobnicate
config_error workers-zero "--workers|-w\b" --auth "$C/auth.json" --images "$C/images.json" --workers 0
mkdir -p "$C/images-dir.json"
config_error images-directory "$(re "$C/images-dir.json").*(director|not a (regular )?file)" \
  --auth "$C/auth.json" --images "$C/images-dir.json"

# ---------------------------------------------------------------- a password in a syntax error
# A stray backslash in the password: the JSON error must not quote the password.
printf '{"reg.example:5000": {"username": "alice", "password": "S3cr3t-Pa55\\q", "insecure": true}}\n' \
  >"$C/auth-syntax.json"
config_error auth-syntax "^image-migrator: $(re "$C/auth-syntax.json"):1:[0-9]+: " \
  --auth "$C/auth-syntax.json" --images "$C/images.json"
if grep -q 'S3cr3t' "$IM_WORK/auth-syntax.err"; then
  fail "auth-syntax: the JSON error message shows the password: $(cat "$IM_WORK/auth-syntax.err")"
fi
pass "auth-syntax: the password is not quoted in the error"

# ---------------------------------------------------------------- against registries
start_registry src plain
start_registry dst plain
start_registry hsrc htpasswd
L=$IM_WORK/layout
make_layout "$L" app --layers 2 --layer-size 100000 --seed bad-input >/dev/null
seed "$L" app "$SRC_ADDR/ns/app:1"
seed "$L" app "$HSRC_ADDR/ns/app:1"
cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON

# A rule whose destination is a number is counted; the valid rule in the same file still runs.
cat >"$IM_WORK/images-42.json" <<JSON
{"$SRC_ADDR/ns/app:1": "$DST_ADDR/ns/good", "$SRC_ADDR/ns/broken:1": 42}
JSON
run_im rule-42 --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-42.json" --log ""
cat "$IM_WORK/rule-42.err"
no_crash rule-42
assert_eq "$rc" 1 "rule-42: exit code 1"
assert_eq "$(tail -n1 "$IM_WORK/rule-42.err" | sed 's/^.*info  //')" \
  "Images(1) migration finished, 0 images tasks failed, 1 tasks generate failed" "rule-42: counted as generate failed"
grep -q "rule \"$SRC_ADDR/ns/broken:1\".*images-42.json" "$IM_WORK/rule-42.err" ||
  fail "rule-42: the broken rule is not reported by its key and file"
pass "rule-42: the broken rule is reported by its key and file"
s=$(raw_digest "$SRC_ADDR/ns/app:1")
assert_eq "$(raw_digest "$DST_ADDR/ns/good:1")" "$s" "rule-42: the valid rule still copied"

# An unknown host and a closed port: one FAILED line each, naming the registry, quickly.
closed=$(free_port)
cat >"$IM_WORK/images-unreachable.json" <<JSON
{"no-such-host.invalid/ns/app:1": "$DST_ADDR/ns/a", "127.0.0.1:$closed/ns/app:1": "$DST_ADDR/ns/b"}
JSON
run_im unreachable --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-unreachable.json" -r 0 --log ""
cat "$IM_WORK/unreachable.err"
no_crash unreachable
assert_eq "$rc" 1 "unreachable: exit code 1"
[ "$ms" -lt 30000 ] || fail "unreachable: took ${ms} ms with -r 0"
pass "unreachable: finished in ${ms} ms"
for reg in no-such-host.invalid "127.0.0.1:$closed"; do
  assert_eq "$(grep -c "FAILED $reg/ns/app:1 -> " "$IM_WORK/unreachable.err")" 1 "unreachable: one FAILED line for $reg"
  line=$(grep "FAILED $reg/ns/app:1 -> " "$IM_WORK/unreachable.err")
  [[ "${line#*: }" == *"$reg"* ]] || fail "unreachable: the reason does not name $reg: $line"
  pass "unreachable: the reason names $reg"
done

# A tag that does not exist: not found, once, even with 3 extra passes.
echo "{\"$SRC_ADDR/ns/app:nope\": \"$DST_ADDR/ns/c\"}" >"$IM_WORK/images-missing-tag.json"
run_im missing-tag --auth "$IM_WORK/auth.json" --images "$IM_WORK/images-missing-tag.json" -r 3 --log ""
cat "$IM_WORK/missing-tag.err"
no_crash missing-tag
assert_eq "$rc" 1 "missing tag: exit code 1"
assert_eq "$(grep -c 'FAILED ' "$IM_WORK/missing-tag.err")" 1 "missing tag: one FAILED line with -r 3 (not retried)"
grep 'FAILED ' "$IM_WORK/missing-tag.err" | grep -qi 'not found' || fail "missing tag: the FAILED line does not say not found"
pass "missing tag: the FAILED line says not found"
assert_eq "$(grep -Ec '"(HEAD|GET) /v2/ns/app/manifests/nope HTTP' "$SRC_LOG" || true)" 1 \
  "missing tag: the source was asked for the tag once"
[ "$ms" -lt 10000 ] || fail "missing tag: took ${ms} ms"
pass "missing tag: finished in ${ms} ms"

# --write-failed: the failed images as an images file; running it again copies just them.
# Also listed: a rule whose tag listing could not reach its registry (as written: the rule again), and
# an image given by digest (its destination without the digest, which rules do not take).
nodigest=sha256:$(printf 'no such manifest' | sha256sum | cut -d' ' -f1)
cat >"$IM_WORK/images-some-fail.json" <<JSON
{"$SRC_ADDR/ns/app:1": "$DST_ADDR/ns/ok", "$SRC_ADDR/ns/app:later": ["$DST_ADDR/ns/l1", "$DST_ADDR/ns/l2"],
 "127.0.0.1:$closed/ns/gone": {"destination": "$DST_ADDR/ns/gone", "tags": {"regex": "^v"}},
 "$SRC_ADDR/ns/app@$nodigest": "$DST_ADDR/ns/dg"}
JSON
cat >"$IM_WORK/auth-some-fail.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}, "127.0.0.1:$closed": {"insecure": true}}
JSON
run_im some-fail --auth "$IM_WORK/auth-some-fail.json" --images "$IM_WORK/images-some-fail.json" -r 0 --log "" \
  --write-failed "$IM_WORK/failed.json"
no_crash some-fail
assert_eq "$rc" 1 "write-failed: exit code 1"
assert_eq "$(jq -S -c . "$IM_WORK/failed.json")" "$(jq -S -c . <<JSON
{"$SRC_ADDR/ns/app:later": ["$DST_ADDR/ns/l1:later", "$DST_ADDR/ns/l2:later"],
 "127.0.0.1:$closed/ns/gone": {"destination": "$DST_ADDR/ns/gone", "tags": {"regex": "^v"}},
 "$SRC_ADDR/ns/app@$nodigest": "$DST_ADDR/ns/dg"}
JSON
)" "write-failed: the failed source with both its destinations, the unlisted rule, the image by digest"
# The rerun below is of the images that can now succeed; the other two stay failed.
jq --arg k "$SRC_ADDR/ns/app:later" '{($k): .[$k]}' "$IM_WORK/failed.json" >"$IM_WORK/failed-later.json"
mv "$IM_WORK/failed-later.json" "$IM_WORK/failed.json"
seed "$L" app "$SRC_ADDR/ns/app:later"
run_im rerun --auth "$IM_WORK/auth.json" --images "$IM_WORK/failed.json" -r 0 --log "" --write-failed "$IM_WORK/failed2.json"
no_crash rerun
assert_eq "$rc" 0 "write-failed: the rerun of the list succeeds once the tag exists"
assert_eq "$(grep -c "^.*OK $SRC_ADDR/ns/app:later -> " "$IM_WORK/rerun.err")" 2 "write-failed: the rerun copied the two failed images"
assert_eq "$(grep -c " OK " "$IM_WORK/rerun.err")" 2 "write-failed: and nothing else"
assert_eq "$(jq -c . "$IM_WORK/failed2.json")" "{}" "write-failed: nothing failed, an empty list"
run_im empty-rerun --auth "$IM_WORK/auth.json" --images "$IM_WORK/failed2.json" --log ""
assert_eq "$rc" 0 "an empty images file: exit 0"
grep -q "warning $(re "$IM_WORK/failed2.json"): no rules: nothing to copy" "$IM_WORK/empty-rerun.err" ||
  fail "an empty images file: no warning ($(cat "$IM_WORK/empty-rerun.err"))"
pass "an empty images file: a warning says there is nothing to copy"

# Credentials never leak: a refused htpasswd password, verbose, with a log file.
secret=S3cr3t-Pa55
cat >"$IM_WORK/auth-leak.json" <<JSON
{"$HSRC_ADDR": {"username": "alice", "password": "$secret", "insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
echo "{\"$HSRC_ADDR/ns/app:1\": \"$DST_ADDR/ns/leak\"}" >"$IM_WORK/images-leak.json"
run_im leak --auth "$IM_WORK/auth-leak.json" --images "$IM_WORK/images-leak.json" -r 1 -v --log "$IM_WORK/leak.log"
cat "$IM_WORK/leak.err"
no_crash leak
assert_eq "$rc" 1 "leak: a refused password fails the run"
b64=$(printf 'alice:%s' "$secret" | base64 -w0)
for f in leak.stdout leak.err leak.log; do
  [ -f "$IM_WORK/$f" ] || fail "leak: $f was not written"
  if grep -qF -e "$secret" -e "$b64" "$IM_WORK/$f"; then
    fail "leak: the password appears in $f: $(grep -F -e "$secret" -e "$b64" "$IM_WORK/$f" | head -n 1)"
  fi
done
pass "leak: the password (plain or Basic-encoded) is in neither stdout, stderr nor the log file"

echo "test_bad_input: all checks passed"

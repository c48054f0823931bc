#!/usr/bin/env bash
# The command line as a newcomer meets it: the top-level --help lists every command and the README
# has a section for each; a mistyped command or flag gets a suggestion; a value that is not a number
# names its flag; no help shows two defaults for one flag; every file a flag names for writing is
# refused, before anything runs, when its directory does not exist (and no directory is created);
# verify's table is aligned and its --output json is JSON alone.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
cd "$IM_WORK"

# usage_error NAME PATTERN ARGS...: exit 2, exactly one line on stderr matching PATTERN, nothing on stdout.
usage_error() {
  local name=$1 pattern=$2 rc=0
  shift 2
  im_run "$IM_BIN" "$@" >"$name.out" 2>"$name.err" || rc=$?
  [ "$rc" == 2 ] || fail "$name: exit $rc, expected 2 ($(cat "$name.err"))"
  [ "$(wc -l <"$name.err")" == 1 ] || fail "$name: expected one line on stderr, got: $(cat "$name.err")"
  [ ! -s "$name.out" ] || fail "$name: output on stdout: $(cat "$name.out")"
  grep -Eq -- "$pattern" "$name.err" || fail "$name: /$pattern/ does not match: $(cat "$name.err")"
  pass "$name: $(cat "$name.err")"
}

# ---------------------------------------------------------------- commands in --help and README
"$IM_BIN" --help >help.txt
mapfile -t commands < <(awk '/^Commands/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && !/^  / { exit }' help.txt)
for c in config verify rewrite rollback auth; do
  printf '%s\n' "${commands[@]}" | grep -qx "$c" || fail "--help does not list $c: ${commands[*]}"
done
pass "--help lists the commands: ${commands[*]}"
for c in "${commands[@]}"; do
  "$IM_BIN" "$c" --help >"help-$c.txt" || fail "$c --help failed"
  grep -Eq "^#{2,4} .*\`image-migrator $c[\` ]" "$IM_REPO_ROOT/README.md" || fail "README.md has no section for $c"
done
pass "every command has a --help and a README section"
"$IM_BIN" help >help2.txt || fail "image-migrator help failed"
cmp -s help.txt help2.txt || fail "image-migrator help is not --help"

# No flag shows two defaults ("(default: all) (default: \"\")"): each flag's description joined.
for f in help.txt help-*.txt; do
  # (mawk, Debian's awk, takes no {n,m} in a regex: the indentation is measured instead.)
  awk '{ match($0, /^ */); indent = RLENGTH; first = substr($0, indent + 1, 1) }
       indent >= 1 && indent <= 6 && first == "-" { if (d ~ /\(default:.*\(default:/) print d; d = $0; next }
       indent >= 7 && first != "" { d = d " " $0; next }
       END { if (d ~ /\(default:.*\(default:/) print d }' "$f" >twice.txt
  [ ! -s twice.txt ] || fail "$f: a flag with two defaults: $(cat twice.txt)"
done
pass "no flag shows two defaults"

# ---------------------------------------------------------------- typos and bad values
usage_error typo-command 'unknown command "confg": did you mean "config"\?' confg -t x/y
usage_error typo-command-swap 'unknown command "veirfy": did you mean "verify"\?' veirfy
usage_error unknown-command 'unknown command "frob" \(commands: config, verify, rewrite[,;]' frob
grep -q "did you mean" unknown-command.err && fail "unknown-command: a suggestion for a word like no command"
usage_error typo-flag 'unknown flag --wokers: did you mean --workers\?' --wokers 5
usage_error typo-flag-config 'unknown flag --namespace: did you mean --namespaces\?' config --namespace x
usage_error workers-word '--workers takes a whole number, not "five"' --workers=five
usage_error workers-word-space '--workers takes a whole number, not "five"' --workers five
usage_error workers-short '-w takes a whole number, not "five"' -w five
usage_error retries-word '--retries takes a whole number, not "x"' --retries=x
usage_error page-size-word '--page-size takes a whole number, not "big"' config -t r.io/ns --page-size big
usage_error verify-workers 'image-migrator verify: --workers takes a whole number, not "many"' verify --workers many
usage_error bool-word '--dry-run takes true or false, not "maybe"' --dry-run=maybe
usage_error missing-value '--log needs a value' --log
usage_error verify-output '--output must be table or json, not "yaml"' verify --output yaml

# ---------------------------------------------------------------- output paths: one behaviour
printf '{"127.0.0.1:9/ns/app:1": {"insecure": true}}\n' >auth.json
printf '{"127.0.0.1:9/ns/app:1": "127.0.0.1:9/ns/copy"}\n' >images.json
missing=$IM_WORK/no/such/dir
for flag in --log --report --write-failed --digest-cache; do
  usage_error "missing-dir$flag" "^image-migrator: $flag $missing/out: directory $missing does not exist" \
    --auth auth.json --images images.json "$flag" "$missing/out"
done
usage_error missing-dir-log-relative "^image-migrator: --log nodir/x.log: directory nodir does not exist" \
  --auth auth.json --images images.json --log nodir/x.log
for flag in -o --report --with-pull-secrets; do
  usage_error "config-missing-dir$flag" "--?(o|output|report|with-pull-secrets) $missing/out: directory $missing does not exist" \
    config -t r.io/ns -k /nonexistent/kubeconfig "$flag" "$missing/out"
done
[ ! -e "$IM_WORK/no" ] && [ ! -e nodir ] || fail "a directory was created for an output path"
pass "no directory was created for any output path"
# The auth file was not touched (its check comes first, before any password is encrypted).
assert_eq "$(cat auth.json)" '{"127.0.0.1:9/ns/app:1": {"insecure": true}}' "the auth file is unchanged"

# ---------------------------------------------------------------- verify: table and JSON
start_registry src plain
start_registry dst plain
make_layout layout v1 --layers 1 --layer-size 10000 --seed cli >/dev/null
seed layout v1 "$SRC_ADDR/team/app:1"
seed layout v1 "$SRC_ADDR/team/a-much-longer-repository-name:1"
seed layout v1 "$DST_ADDR/prod/app:1"
printf '{"%s": {"insecure": true}, "%s": {"insecure": true}}\n' "$SRC_ADDR" "$DST_ADDR" >auth2.json
printf '{"%s/team/app:1": "%s/prod/app", "%s/team/a-much-longer-repository-name:1": "%s/prod/x"}\n' \
  "$SRC_ADDR" "$DST_ADDR" "$SRC_ADDR" "$DST_ADDR" >images2.json
rc=0
im_run "$IM_BIN" verify --auth auth2.json --images images2.json >table.txt 2>table.err || rc=$?
cat table.txt
assert_eq "$rc" 1 "verify: exit 1 with a missing image"
head -n 1 table.txt | grep -Eq '^STATUS +SOURCE +DESTINATION +SOURCE DIGEST +DESTINATION DIGEST$' || fail "verify: header $(head -n 1 table.txt)"
# Aligned: in every row, each column starts where the header's does.
for col in SOURCE DESTINATION "SOURCE DIGEST" "DESTINATION DIGEST"; do
  at=$(head -n 1 table.txt | awk -v c="$col" '{ print index($0, c) }')
  sed -n '2,3p' table.txt | while IFS= read -r row; do
    [ "${row:at-2:1}" == " " ] && [ "${row:at-1:1}" != " " ] || fail "verify: column $col does not start at $at in: $row"
  done
done
digest=$(raw_digest "$SRC_ADDR/team/app:1")
grep -Eq "^SAME +$SRC_ADDR/team/app:1 +$DST_ADDR/prod/app:1 +${digest:0:19} +${digest:0:19}$" table.txt || fail "verify: the SAME row"
grep -Eq "^MISSING +$SRC_ADDR/team/a-much-longer-repository-name:1 +$DST_ADDR/prod/x:1 +${digest:0:19} +-$" table.txt ||
  fail "verify: the MISSING row"
pass "verify: an aligned table with short digests"
rc=0
im_run "$IM_BIN" verify --output json --auth auth2.json --images images2.json >verify.json 2>verify.err || rc=$?
assert_eq "$rc" 1 "verify --output json: the same exit code"
jq -e . verify.json >/dev/null || fail "verify --output json: stdout is not JSON: $(head -c 300 verify.json)"
assert_eq "$(jq -r '[.images[] | .status + " " + .source + " " + (.source_digest // "null") + " " + (.destination_digest // "null")] | sort | join(",")' verify.json)" \
  "missing $SRC_ADDR/team/a-much-longer-repository-name:1 $digest null,same $SRC_ADDR/team/app:1 $digest $digest" \
  "verify --output json: statuses and full digests"
assert_eq "$(jq -cS .summary verify.json)" '{"different":0,"errors":0,"images":2,"incomplete":0,"missing":1,"rules_failed":0,"same":1}' \
  "verify --output json: the summary"
echo "test_cli: all checks passed"

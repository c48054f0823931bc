#!/usr/bin/env bash
# Whole namespaces: "registry/namespace/*" rules are expanded through the registry's catalog
# (_catalog, paginated) into one rule per repository below the namespace, nested paths kept; other
# namespaces are left alone; a registry that refuses its catalog gives a clear error for that rule
# while the other rules still run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

start_registry src plain
start_registry dst plain
L=$IM_WORK/layout
make_layout "$L" v1 --layers 1 --layer-size 50000 --seed c1 >/dev/null
make_layout "$L" v2 --layers 1 --layer-size 50000 --seed c2 >/dev/null
seed "$L" v1 "$SRC_ADDR/team/api:1"
seed "$L" v2 "$SRC_ADDR/team/api:2"
seed "$L" v1 "$SRC_ADDR/team/tools/cli:1"
seed "$L" v2 "$SRC_ADDR/team/web:1"
seed "$L" v1 "$SRC_ADDR/other/x:1"
seed "$L" v1 "$SRC_ADDR/teamster/y:1"
cat >"$IM_WORK/auth.json" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
cat >"$IM_WORK/images.json" <<JSON
{"$SRC_ADDR/team/*": "$DST_ADDR/org/*"}
JSON
rc=0
IMAGE_MIGRATOR_TAG_PAGE_SIZE=2 im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "" \
  >"$IM_WORK/out" 2>&1 || rc=$?
cat "$IM_WORK/out"
assert_eq "$rc" 0 "whole-namespace rule copies"
grep -q "Images(4) migration finished, 0 images tasks failed, 0 tasks generate failed" "$IM_WORK/out" || fail "expected 4 images"
[ "$(grep -c 'GET /v2/_catalog' "$SRC_LOG")" -ge 3 ] || fail "the catalog was not paginated"
pass "catalog listed over $(grep -c 'GET /v2/_catalog' "$SRC_LOG") pages of 2"
for p in "team/api:1 org/api:1" "team/api:2 org/api:2" "team/tools/cli:1 org/tools/cli:1" "team/web:1 org/web:1"; do
  set -- $p
  assert_eq "$(raw_digest "$DST_ADDR/$2")" "$(raw_digest "$SRC_ADDR/$1")" "$1 -> $2"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$DST_ADDR/v2/org/x/tags/list")
assert_eq "$code" 404 "other namespaces (other/, teamster/) untouched"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$DST_ADDR/v2/org/y/tags/list")
assert_eq "$code" 404 "a namespace that merely starts with the same letters is not included"

# A registry that refuses _catalog (here: a proxy answering 401 for it).
start_proxy guard "$SRC_ADDR"
set_rules "$GUARD_RULES" 'GET ^/v2/_catalog status=401 count=inf'
cat >"$IM_WORK/auth2.json" <<JSON
{"$GUARD_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
cat >"$IM_WORK/images2.json" <<JSON
{"$GUARD_ADDR/team/*": "$DST_ADDR/org2/*", "$GUARD_ADDR/other/x:1": "$DST_ADDR/org2/x"}
JSON
rc=0
im_run "$IM_BIN" --auth "$IM_WORK/auth2.json" --images "$IM_WORK/images2.json" -r 0 --log "" >"$IM_WORK/out2" 2>&1 || rc=$?
cat "$IM_WORK/out2"
assert_eq "$rc" 1 "refused catalog: exit 1"
grep -q "rule \"$GUARD_ADDR/team/\*\".*does not let these credentials list its catalog" "$IM_WORK/out2" || fail "no clear catalog error"
grep -q "Images(1) migration finished, 0 images tasks failed, 1 tasks generate failed" "$IM_WORK/out2" || fail "the other rule did not run"
assert_eq "$(raw_digest "$DST_ADDR/org2/x:1")" "$(raw_digest "$SRC_ADDR/other/x:1")" "the other rule still copied"
echo "test_catalog: all checks passed"

#!/usr/bin/env bash
# Whole namespaces on Harbor: Harbor lets only system admins read /v2/_catalog, so a rule
# "harbor/project/*" falls back to Harbor's project API (GET /api/v2.0/projects/P/repositories, paged,
# Basic credentials, X-Is-Resource-Name: true, Link rel="next" with Harbor's prev-then-next format).
# Harbor is tests/tools/harbor_api.py, a test double in front of a real docker-registry (htpasswd):
# every registry request goes through it to the real registry, _catalog is refused to everyone but
# the admin (alice), and the project API lists the registry's real repositories.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
HARBOR_API=${HARBOR_API:-$IM_REPO_ROOT/tests/tools/harbor_api.py}
# An image-migrator run that does not end (pagination going round in circles) fails after this long.
HB_TIMEOUT=${HB_TIMEOUT:-30}

start_registry up htpasswd # the registry behind Harbor; users alice/alicepass, bob/bobpass
start_registry dst plain
L=$IM_WORK/layout
# Project "proj": 5 repositories (2 below proj/team/), proj/a with two tags; project "other": 1.
# Every image has blobs of its own, so that each one has to be read through the double.
SRC_TAGS=(a:1 a:2 b:1 e:1 team/c:1 team/d:1)
for t in "${SRC_TAGS[@]}" x:1; do
  make_layout "$L" "${t//[\/:]/-}" --layers 1 --layer-size 40000 --seed "harbor-$t" >/dev/null
done
for t in "${SRC_TAGS[@]}"; do seed "$L" "${t//[\/:]/-}" "$UP_ADDR/proj/$t"; done
seed "$L" x-1 "$UP_ADDR/other/x:1"
declare -A SRC_DIGEST
for t in "${SRC_TAGS[@]}"; do SRC_DIGEST[$t]=$(raw_digest "$UP_ADDR/proj/$t"); done

# The Harbor double: pages of at most 2 repositories (5 in proj = 3 pages), alice is the admin.
hd=$IM_WORK/harbor
spawn_listener "harbor_api.py" "$hd" python3 "$HARBOR_API" --upstream "http://$UP_ADDR" --port 0 \
  --port-file "$hd/port" --log "$hd/log" --page-size-cap 2 --admin alice
HARBOR_ADDR=127.0.0.1:$(cat "$hd/port")
HLOG=$hd/log
API=/api/v2.0/projects/proj/repositories

# The double is as strict as the test needs: a run that lists the project proves the client sent
# the header and its credentials.
http_code() { curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "$@"; }
assert_eq "$(http_code -u bob:bobpass "http://$HARBOR_ADDR$API?page=1&page_size=100")" 400 \
  "the double: the project API without X-Is-Resource-Name is 400"
assert_eq "$(http_code -H 'X-Is-Resource-Name: true' "http://$HARBOR_ADDR$API?page=1&page_size=100")" 401 \
  "the double: the project API without credentials is 401"
assert_eq "$(http_code -u bob:bobpass "http://$HARBOR_ADDR/v2/_catalog")" 401 "the double: bob may not list _catalog"

# hb_run NAME USER PASSWORD IMAGES_JSON [ARG...]: image-migrator with USER's credentials for the double;
# output in $IM_WORK/NAME.out, the double's log lines of this run in $IM_WORK/NAME.hlog; sets rc.
hb_run() {
  local name=$1 user=$2 password=$3 images=$4 before
  shift 4
  cat >"$IM_WORK/$name.auth.json" <<JSON
{"$HARBOR_ADDR": {"username": "$user", "password": "$password", "insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON
  printf '%s\n' "$images" >"$IM_WORK/$name.images.json"
  before=$(wc -l <"$HLOG")
  rc=0
  im_run timeout -k 3 "$HB_TIMEOUT" "$IM_BIN" --auth "$IM_WORK/$name.auth.json" --images "$IM_WORK/$name.images.json" \
    --log "" "$@" >"$IM_WORK/$name.out" 2>&1 || rc=$?
  tail -n +$((before + 1)) "$HLOG" >"$IM_WORK/$name.hlog"
  echo "--- $name (exit $rc)"
  cat "$IM_WORK/$name.out"
  if [ "$rc" == 124 ] || [ "$rc" == 137 ]; then
    fail "$name: image-migrator did not finish within $HB_TIMEOUT s ($(grep -c " $API" "$IM_WORK/$name.hlog") project API" \
      "requests, first ones: $(grep " $API" "$IM_WORK/$name.hlog" | head -n 6 | cut -d' ' -f2 | sed 's/.*?//' | tr '\n' ' '))"
  fi
}

# dst_repos PREFIX: the destination's repositories starting with PREFIX, on one line.
dst_repos() {
  curl -s --noproxy '*' "http://$DST_ADDR/v2/_catalog?n=1000" | jq -r --arg p "$1" \
    '[.repositories[] | select(startswith($p))] | join(" ")'
}

# check_copies DST_NS TAG...: every "repo:tag" (below proj/) is in the destination under DST_NS/, same digest.
check_copies() {
  local ns=$1 t
  shift
  for t in "$@"; do
    assert_eq "$(raw_digest "$DST_ADDR/$ns/$t")" "${SRC_DIGEST[$t]}" "proj/$t -> $ns/$t, same digest"
  done
}

# ---------------------------------------------------------------- bob (not an admin): the project API
hb_run whole bob bobpass "{\"$HARBOR_ADDR/proj/*\": \"$DST_ADDR/mirror/*\"}"
assert_eq "$rc" 0 "proj/* as bob: exit 0"
grep -q "Images(6) migration finished, 0 images tasks failed, 0 tasks generate failed" "$IM_WORK/whole.out" ||
  fail "proj/* as bob: expected 6 images (5 repositories) copied"
first_catalog=$(grep -n '^GET /v2/_catalog' "$IM_WORK/whole.hlog" | head -n 1) || fail "the client never asked _catalog"
[[ "$first_catalog" == *" 401" ]] || fail "the first _catalog request was not refused: $first_catalog"
grep -q '^GET /v2/_catalog.* 200$' "$IM_WORK/whole.hlog" && fail "bob was given the catalog"
first_api=$(grep -n " $API" "$IM_WORK/whole.hlog" | head -n 1 | cut -d: -f1) || fail "the project API was never asked"
[ "${first_catalog%%:*}" -lt "$first_api" ] || fail "the project API was asked before _catalog"
pass "the _catalog 401 came first, then the project API"
first_ping=$(grep -n "^GET /api/v2.0/ping 200" "$IM_WORK/whole.hlog" | head -n 1 | cut -d: -f1) || fail "no anonymous ping before the project API"
[ "$first_ping" -lt "$first_api" ] || fail "the project API was asked before the ping"
pass "Harbor was recognised by its /api/v2.0/ping before any credentials went to its API"
assert_eq "$(grep " $API" "$IM_WORK/whole.hlog" | cut -d' ' -f1,2,3 | tr '\n' ';')" \
  "GET $API?page=1&page_size=100 200;GET $API?page=2&page_size=2 200;GET $API?page=3&page_size=2 200;" \
  "the project API was read page by page (1, 2, 3), each page once, following rel=\"next\""
assert_eq "$(dst_repos mirror/)" "mirror/a mirror/b mirror/e mirror/team/c mirror/team/d" \
  "exactly the 5 repositories of proj landed under mirror/ (not other/x)"
check_copies mirror "${SRC_TAGS[@]}"
for r in a b e team/c team/d; do
  grep -Eq "^(GET|HEAD) /v2/proj/$r/manifests/[^ ]+ 200$" "$IM_WORK/whole.hlog" ||
    fail "proj/$r was not read through the Harbor double"
  grep -Eq "^GET /v2/proj/$r/blobs/sha256:[0-9a-f]{64} 200$" "$IM_WORK/whole.hlog" ||
    fail "the blobs of proj/$r were not read through the Harbor double"
done
pass "every image was read through the Harbor double (its /v2/ requests)"
code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://$DST_ADDR/v2/mirror/x/tags/list")
assert_eq "$code" 404 "other/x was not copied"

# ---------------------------------------------------------------- a namespace below the project
hb_run team bob bobpass "{\"$HARBOR_ADDR/proj/team/*\": \"$DST_ADDR/mirror2/*\"}"
assert_eq "$rc" 0 "proj/team/* as bob: exit 0"
grep -q "Images(2) migration finished, 0 images tasks failed, 0 tasks generate failed" "$IM_WORK/team.out" ||
  fail "proj/team/*: expected 2 images copied"
grep -q "^GET $API?page=1&page_size=100 200$" "$IM_WORK/team.hlog" || fail "proj/team/*: project proj was not listed"
assert_eq "$(dst_repos mirror2/)" "mirror2/c mirror2/d" "proj/team/*: only team/c and team/d"
for t in team/c:1 team/d:1; do
  assert_eq "$(raw_digest "$DST_ADDR/mirror2/${t#team/}")" "${SRC_DIGEST[$t]}" "proj/$t -> mirror2/${t#team/}"
done
[ -z "$(dst_repos mirror2/team)" ] || fail "proj/team/* kept the team/ level"

# ---------------------------------------------------------------- an unknown project
before_dst=$(curl -s --noproxy '*' "http://$DST_ADDR/v2/_catalog?n=1000" | jq -c .repositories)
hb_run nope bob bobpass "{\"$HARBOR_ADDR/nope/*\": \"$DST_ADDR/mirror3/*\"}" -r 0
assert_eq "$rc" 1 "unknown project: exit 1"
grep -q "^GET /api/v2.0/projects/nope/repositories?page=1&page_size=100 404$" "$IM_WORK/nope.hlog" ||
  fail "unknown project: the project API was not asked"
assert_eq "$(grep -cF "$HARBOR_ADDR/nope/*" "$IM_WORK/nope.out")" 1 "unknown project: one line names the rule"
err=$(grep -F "$HARBOR_ADDR/nope/*" "$IM_WORK/nope.out")
grep -qi 'catalog' <<<"$err" || fail "unknown project: the error does not say the catalog was refused: $err"
grep -qi 'harbor' <<<"$err" || fail "unknown project: the error does not mention the Harbor API: $err"
grep -Eqi 'not found|404' <<<"$err" || fail "unknown project: the error does not say the project was not found: $err"
pass "unknown project: the error says the catalog was refused and Harbor does not know the project"
grep -q "Images(0) migration finished, 0 images tasks failed, 1 tasks generate failed" "$IM_WORK/nope.out" ||
  fail "unknown project: the rule was not counted as failed"
assert_eq "$(curl -s --noproxy '*' "http://$DST_ADDR/v2/_catalog?n=1000" | jq -c .repositories)" "$before_dst" \
  "unknown project: nothing copied"

# ---------------------------------------------------------------- the admin: _catalog, no project API
hb_run admin alice alicepass "{\"$HARBOR_ADDR/proj/*\": \"$DST_ADDR/admin/*\"}"
assert_eq "$rc" 0 "proj/* as the admin: exit 0"
grep -q '^GET /v2/_catalog.* 200$' "$IM_WORK/admin.hlog" || fail "the admin did not get the catalog"
if grep -q ' /api/' "$IM_WORK/admin.hlog"; then fail "the admin run called the project API"; fi
pass "the admin lists _catalog; the project API is not called"
assert_eq "$(dst_repos admin/)" "admin/a admin/b admin/e admin/team/c admin/team/d" \
  "the admin run copied the 5 repositories of proj"
check_copies admin "${SRC_TAGS[@]}"

# ---------------------------------------------------------------- secrets
no_leak bobpass bob "$IM_WORK"/{whole,team,nope}.out "$HLOG" "$hd/stderr"
no_leak alicepass alice "$IM_WORK/admin.out" "$HLOG" "$hd/stderr"
pass "no password in any output"
echo "test_harbor: all checks passed"

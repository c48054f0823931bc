#!/usr/bin/env bash
# Authentication against real registries: Basic (htpasswd) with passwords from the environment,
# Bearer tokens that expire during the run (renewed, never leaked), refused credentials and a
# pull-only user fail at once without pushing anything, chunked uploads, and auth entries keyed by
# registry/namespace (the longest key wins, each user really is the one talking to its namespace), and
# tokens for many repositories fetched once each and side by side.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
# Runs pass --blob-cache "": what each copies, earlier runs put into other repositories of the same
# registry, and the copy itself is what is tested (not a mount from the blob memory).

# token_for REALM SCOPE: a token for alice (for curl).
token_for() {
  curl -sf --noproxy '*' -u alice:alicepass "$1?service=test-registry&scope=$2" | jq -er .token
}

L=$IM_WORK/layout
make_layout "$L" single --layers 2 --layer-size 200000 --seed auth-single >/dev/null
make_layout "$L" multi --layers 2 --layer-size 100000 --platforms linux/amd64,linux/arm64 --seed auth-multi >/dev/null

# ---------------------------------------------------------------- 1. htpasswd, password from $SRC_PASS
start_registry hsrc htpasswd
start_registry hdst htpasswd
seed "$L" single "$HSRC_ADDR/ns/app:1.0"
seed "$L" multi "$HSRC_ADDR/ns/multi:v1"
cat >"$IM_WORK/auth-basic.json" <<JSON
{
  "$HSRC_ADDR": {"username": "alice", "password": "\$SRC_PASS", "insecure": true},
  "$HDST_ADDR": {"username": "alice", "password": "\${DST_PASS}", "insecure": true}
}
JSON
cat >"$IM_WORK/images-basic.json" <<JSON
{"$HSRC_ADDR/ns/app:1.0": "$HDST_ADDR/team/app", "$HSRC_ADDR/ns/multi:v1": "$HDST_ADDR/team/multi"}
JSON
# Default workers: both tasks start at once and meet each registry's first Basic challenge together.
SRC_PASS=alicepass DST_PASS=alicepass run_im basic --blob-cache "" --auth "$IM_WORK/auth-basic.json" \
  --images "$IM_WORK/images-basic.json" --log "$IM_WORK/basic.log"
cat "$IM_WORK/basic.out"
assert_eq "$rc" 0 "htpasswd: exit code 0 (passwords from \$SRC_PASS and \${DST_PASS})"
assert_eq "$(tail -n1 "$IM_WORK/basic.out" | sed 's/^.*info  //')" \
  "Images(2) migration finished, 0 images tasks failed, 0 tasks generate failed" "htpasswd: summary line"
same_digest "$HSRC_ADDR/ns/app:1.0" "$HDST_ADDR/team/app:1.0" "htpasswd: single-arch digest preserved"
same_digest "$HSRC_ADDR/ns/multi:v1" "$HDST_ADDR/team/multi:v1" "htpasswd: 2-platform index digest preserved"
pull_all_platforms "$HDST_ADDR/team/multi:v1"
pass "htpasswd: both platforms pull back with verified blobs"
no_leak alicepass alice "$IM_WORK/basic.out" "$IM_WORK/basic.log"
pass "htpasswd: no password in the output or the log file"

# ---------------------------------------------------------------- 2. tokens expiring during the run
# Tokens live 3 s (the registry rejects them after that); a run of several seconds with one worker
# must renew them. The time comes from real work: one repository with many tags (each tag is a
# separate image task: HEADs, blob checks and a manifest PUT), plus a 2-platform image.
export TOKEN_TTL=3
start_registry tsrc token
start_registry tdst token
seed "$L" single "$TSRC_ADDR/ns/app:t0"
seed "$L" multi "$TSRC_ADDR/ns/multi:v1"
NTAGS=1200 # enough work that a -w 1 run outlasts the 3 s tokens even on an idle machine
raw_manifest "$TSRC_ADDR/ns/app:t0" >"$IM_WORK/app-manifest.json"
app_mt=$(jq -r .mediaType "$IM_WORK/app-manifest.json")
# One token per 50 PUTs; on a loaded machine a batch may outlast the 3 s token: then the batch is
# sent again with a fresh one (PUTs of the same manifest are idempotent), so the set-up does not
# depend on the machine being idle.
for ((b = 1; b < NTAGS; b += 50)); do
  for attempt in 1 2 3 4 5 6; do
    tok=$(token_for "$TSRC_REALM" "repository:ns/app:pull,push")
    args=()
    for ((i = b; i < b + 50 && i < NTAGS; i++)); do
      [ "$i" -gt "$b" ] && args+=(--next)
      args+=(-sf --noproxy '*' -o /dev/null -X PUT -H "Authorization: Bearer $tok" -H "Content-Type: $app_mt"
        --data-binary "@$IM_WORK/app-manifest.json" "http://$TSRC_ADDR/v2/ns/app/manifests/t$i")
    done
    curl "${args[@]}" && break
    [ "$attempt" -lt 6 ] || fail "tagging ns/app failed 6 times (tags t$b..)"
  done
done
# tags_of URL REALM REPO: sorted tag list (curl, alice).
tags_of() {
  curl -sf --noproxy '*' -H "Authorization: Bearer $(token_for "$2" "repository:$3:pull")" \
    "$1/v2/$3/tags/list?n=10000" | jq -r '.tags[]' | sort
}
src_tags=$(tags_of "$TSRC_URL" "$TSRC_REALM" ns/app)
assert_eq "$(wc -l <<<"$src_tags")" "$NTAGS" "token: seeded $NTAGS tags"

cat >"$IM_WORK/auth-token.json" <<JSON
{
  "$TSRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
  "$TDST_ADDR": {"username": "alice", "password": "alicepass", "insecure": true}
}
JSON
cat >"$IM_WORK/images-token.json" <<JSON
{"$TSRC_ADDR/ns/app": "$TDST_ADDR/ns/app", "$TSRC_ADDR/ns/multi:v1": "$TDST_ADDR/ns/multi"}
JSON
src_before=$(wc -l <"$TSRC_TOKEN_LOG")
dst_before=$(wc -l <"$TDST_TOKEN_LOG")
run_im token --blob-cache "" --auth "$IM_WORK/auth-token.json" --images "$IM_WORK/images-token.json" -w 1 -r 0 \
  --log "$IM_WORK/token.log"
grep -v ' OK ' "$IM_WORK/token.out" || true
# The token logs of the run, before the checks below fetch tokens of their own (as alice).
tail -n +"$((src_before + 1))" "$TSRC_TOKEN_LOG" >"$IM_WORK/tsrc.tokens"
tail -n +"$((dst_before + 1))" "$TDST_TOKEN_LOG" >"$IM_WORK/tdst.tokens"
assert_eq "$rc" 0 "token: exit code 0 with tokens expiring during the run"
[ "$ms" -ge 4000 ] || fail "token: the run took only ${ms} ms, not longer than the 3 s token lifetime; raise NTAGS"
pass "token: the run lasted ${ms} ms, longer than the 3 s token lifetime"
assert_eq "$(grep -c ' OK ' "$IM_WORK/token.out")" "$((NTAGS + 1))" "token: $((NTAGS + 1)) images copied"
src_tags=$(tags_of "$TSRC_URL" "$TSRC_REALM" ns/app)
dst_tags=$(tags_of "$TDST_URL" "$TDST_REALM" ns/app)
assert_eq "$(wc -l <<<"$dst_tags")" "$NTAGS" "token: $NTAGS tags at the destination"
[ "$dst_tags" == "$src_tags" ] || fail "token: the destination's tags differ from the source's"
pass "token: the destination has exactly the source's tags"
for ref in ns/app:t0 "ns/app:t$((NTAGS - 1))" ns/multi:v1; do
  same_digest "$TSRC_ADDR/$ref" "$TDST_ADDR/$ref" "token: digest preserved: $ref"
done
# renewal: during the run alice fetched more tokens than there are distinct scopes.
for reg in tsrc tdst; do
  fetched=$(awk '$3 == "alice" && $5 == 200' "$IM_WORK/$reg.tokens" | wc -l)
  scopes=$(awk '$3 == "alice" && $5 == 200 { print $4 }' "$IM_WORK/$reg.tokens" | sort -u | wc -l)
  [ "$scopes" -ge 1 ] || fail "token: $reg: no token fetched by alice during the run"
  [ "$fetched" -gt "$scopes" ] || fail "token: $reg: alice fetched $fetched token(s) for $scopes scope(s): no renewal"
  pass "token: $reg: alice fetched $fetched tokens for $scopes distinct scopes (renewed)"
done
no_leak alicepass alice "$IM_WORK/token.out" "$IM_WORK/token.log"
pass "token: no password in the output or the log file"

# ---------------------------------------------------------------- 3. wrong password for the destination
# failed_once NAME DST_ADDR USER MSG: exactly one FAILED line; it names DST_ADDR and USER and says
# the credentials were rejected; the run was fast (no retry of refused credentials).
failed_once() {
  local name=$1 addr=$2 user=$3 line
  assert_eq "$rc" 1 "$4: exit code 1"
  assert_eq "$(grep -c 'FAILED ' "$IM_WORK/$name.out")" 1 "$4: one FAILED line, not retried in later passes"
  line=$(grep 'FAILED ' "$IM_WORK/$name.out")
  line=${line#*: } # the reason, after "FAILED src -> dst:"
  [[ "$line" == *"$addr"* ]] || fail "$4: the reason does not name the registry $addr: $line"
  [[ "$line" == *"$user"* ]] || fail "$4: the reason does not name the user $user: $line"
  grep -Eqi 'reject|invalid (username|password|credentials)|wrong (username|password)' <<<"$line" ||
    fail "$4: the reason does not say the credentials were rejected: $line"
  pass "$4: reason names $addr and $user and says the credentials were rejected"
  [ "$ms" -lt 10000 ] || fail "$4: took ${ms} ms (refused credentials must not be retried)"
  pass "$4: finished in ${ms} ms"
}

cat >"$IM_WORK/auth-wrong-token.json" <<JSON
{
  "$TSRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
  "$TDST_ADDR": {"username": "alice", "password": "Wr0ng-Pa55w0rd", "insecure": true}
}
JSON
echo "{\"$TSRC_ADDR/ns/multi:v1\": \"$TDST_ADDR/ns/wrongpw\"}" >"$IM_WORK/images-wrong-token.json"
run_im wrong-token --blob-cache "" --auth "$IM_WORK/auth-wrong-token.json" --images "$IM_WORK/images-wrong-token.json" -r 3 \
  --log "$IM_WORK/wrong-token.log"
cat "$IM_WORK/wrong-token.out"
failed_once wrong-token "$TDST_ADDR" alice "wrong password (token)"
no_leak Wr0ng-Pa55w0rd alice "$IM_WORK/wrong-token.out" "$IM_WORK/wrong-token.log"
pass "wrong password (token): password not in the output or the log file"
assert_absent "$TDST_ADDR/ns/wrongpw:v1" "wrong password (token): nothing pushed"
assert_eq "$(grep -Ec '"(PUT|PATCH|POST) /v2/ns/wrongpw/' "$TDST_LOG" || true)" 0 \
  "wrong password (token): no upload reached the registry"

cat >"$IM_WORK/auth-wrong-basic.json" <<JSON
{
  "$HSRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
  "$HDST_ADDR": {"username": "alice", "password": "Wr0ng-Pa55w0rd", "insecure": true}
}
JSON
echo "{\"$HSRC_ADDR/ns/app:1.0\": \"$HDST_ADDR/ns/wrongpw\"}" >"$IM_WORK/images-wrong-basic.json"
run_im wrong-basic --blob-cache "" --auth "$IM_WORK/auth-wrong-basic.json" --images "$IM_WORK/images-wrong-basic.json" -r 3 \
  --log "$IM_WORK/wrong-basic.log"
cat "$IM_WORK/wrong-basic.out"
failed_once wrong-basic "$HDST_ADDR" alice "wrong password (htpasswd)"
no_leak Wr0ng-Pa55w0rd alice "$IM_WORK/wrong-basic.out" "$IM_WORK/wrong-basic.log"
pass "wrong password (htpasswd): password not in the output or the log file"
assert_absent "$HDST_ADDR/ns/wrongpw:1.0" "wrong password (htpasswd): nothing pushed"
assert_eq "$(grep -Ec '"(PUT|PATCH|POST) /v2/ns/wrongpw/' "$HDST_LOG" || true)" 0 \
  "wrong password (htpasswd): no upload reached the registry"

# ---------------------------------------------------------------- 4. pull-only user as destination
cat >"$IM_WORK/auth-reader.json" <<JSON
{
  "$TSRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
  "$TDST_ADDR": {"username": "reader", "password": "readerpass", "insecure": true}
}
JSON
echo "{\"$TSRC_ADDR/ns/multi:v1\": \"$TDST_ADDR/ns/readonly\"}" >"$IM_WORK/images-reader.json"
run_im reader --blob-cache "" --auth "$IM_WORK/auth-reader.json" --images "$IM_WORK/images-reader.json" -r 2 --log ""
cat "$IM_WORK/reader.out"
assert_eq "$rc" 1 "pull-only user: exit code 1"
assert_eq "$(grep -c 'FAILED ' "$IM_WORK/reader.out")" 1 "pull-only user: one FAILED line, not retried"
line=$(grep 'FAILED ' "$IM_WORK/reader.out")
line=${line#*: }
[[ "$line" == *"$TDST_ADDR"* ]] || fail "pull-only user: the reason does not name $TDST_ADDR: $line"
grep -Eqi 'unauthori[sz]ed|denied|permission|not allowed|insufficient|forbidden' <<<"$line" ||
  fail "pull-only user: the reason does not say access was refused: $line"
pass "pull-only user: the reason names $TDST_ADDR and says access was refused"
[ "$ms" -lt 10000 ] || fail "pull-only user: took ${ms} ms"
assert_absent "$TDST_ADDR/ns/readonly:v1" "pull-only user: no tag at the destination"
assert_eq "$(grep -Ec '"(PUT|PATCH) /v2/ns/readonly/[^"]*" 20[12]' "$TDST_LOG" || true)" 0 \
  "pull-only user: the registry accepted no upload"

# ---------------------------------------------------------------- 5. chunked uploads
cat >"$IM_WORK/auth-chunked.json" <<JSON
{
  "$HSRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
  "$HDST_ADDR": {"username": "bob", "password": "bobpass", "insecure": true, "chunked": true}
}
JSON
echo "{\"$HSRC_ADDR/ns/app:1.0\": \"$HDST_ADDR/ns/chunked\"}" >"$IM_WORK/images-chunked.json"
run_im chunked --blob-cache "" --auth "$IM_WORK/auth-chunked.json" --images "$IM_WORK/images-chunked.json" --log ""
cat "$IM_WORK/chunked.out"
assert_eq "$rc" 0 "chunked: exit code 0"
same_digest "$HSRC_ADDR/ns/app:1.0" "$HDST_ADDR/ns/chunked:1.0" "chunked: digest preserved"
pull_all_platforms "$HDST_ADDR/ns/chunked:1.0"
pass "chunked: the image pulls back with verified blobs"
copied=$(sed -n 's/.* OK .*blobs copied=\([0-9]*\).*/\1/p' "$IM_WORK/chunked.out")
[ "${copied:-0}" -ge 1 ] || fail "chunked: no blob copied (copied='$copied')"
assert_eq "$(grep -Ec '"PATCH /v2/ns/chunked/blobs/uploads/[^"]*" 202' "$HDST_LOG" || true)" "$copied" \
  "chunked: one PATCH per copied blob ($copied) in the registry's access log"

# ---------------------------------------------------------------- 6. auth keyed by namespace
# users_of LOG REPO: distinct auth.user.name of the registry's log lines about REPO (docker-registry
# logs the user with every error response, e.g. the 404s of the HEADs before an upload).
users_of() {
  grep -F "vars.name=$2 " "$1" | grep -o 'auth\.user\.name=[^ ]*' | sed 's/.*=//' | sort -u | tr '\n' ' '
}
cat >"$IM_WORK/auth-ns.json" <<JSON
{
  "$TSRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
  "$HDST_ADDR/team": {"username": "alice", "password": "alicepass", "insecure": true},
  "$HDST_ADDR": {"username": "bob", "password": "bobpass", "insecure": true}
}
JSON
echo "{\"$TSRC_ADDR/ns/multi:v1\": [\"$HDST_ADDR/team/app6\", \"$HDST_ADDR/other/app6\"]}" >"$IM_WORK/images-ns.json"
run_im ns --blob-cache "" --auth "$IM_WORK/auth-ns.json" --images "$IM_WORK/images-ns.json" --log ""
cat "$IM_WORK/ns.out"
assert_eq "$rc" 0 "namespace keys (htpasswd): exit code 0"
assert_eq "$(users_of "$HDST_LOG" team/app6)" "alice " "namespace keys (htpasswd): only alice talked to team/app6"
assert_eq "$(users_of "$HDST_LOG" other/app6)" "bob " "namespace keys (htpasswd): only bob talked to other/app6"
same_digest "$TSRC_ADDR/ns/multi:v1" "$HDST_ADDR/team/app6:v1" "namespace keys (htpasswd): team/app6 copied"
same_digest "$TSRC_ADDR/ns/multi:v1" "$HDST_ADDR/other/app6:v1" "namespace keys (htpasswd): other/app6 copied"

# The same with a wrong password for bob: the team/ key (alice) still wins for team/.
jq --arg k "$HDST_ADDR" '.[$k].password = "Wr0ng-Pa55w0rd"' "$IM_WORK/auth-ns.json" >"$IM_WORK/auth-ns-bad.json"
echo "{\"$TSRC_ADDR/ns/multi:v1\": [\"$HDST_ADDR/team/app6b\", \"$HDST_ADDR/other/app6b\"]}" >"$IM_WORK/images-ns-bad.json"
run_im ns-bad --blob-cache "" --auth "$IM_WORK/auth-ns-bad.json" --images "$IM_WORK/images-ns-bad.json" -r 0 --log ""
cat "$IM_WORK/ns-bad.out"
assert_eq "$rc" 1 "namespace keys, bob's password wrong: exit code 1"
grep -q "OK .* -> $HDST_ADDR/team/app6b:v1 " "$IM_WORK/ns-bad.out" || fail "namespace keys: team/app6b not copied with alice"
grep -q "FAILED .* -> $HDST_ADDR/other/app6b:v1: " "$IM_WORK/ns-bad.out" || fail "namespace keys: other/app6b did not fail"
pass "namespace keys, bob's password wrong: team/app6b copied (alice), other/app6b failed (bob)"

# Bearer: each user asks the token server for its own namespace only.
cat >"$IM_WORK/auth-ns-token.json" <<JSON
{
  "$TSRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
  "$TDST_ADDR/team": {"username": "alice", "password": "alicepass", "insecure": true},
  "$TDST_ADDR": {"username": "bob", "password": "bobpass", "insecure": true}
}
JSON
echo "{\"$TSRC_ADDR/ns/multi:v1\": [\"$TDST_ADDR/team/app6\", \"$TDST_ADDR/other/app6\"]}" >"$IM_WORK/images-ns-token.json"
dst_before=$(wc -l <"$TDST_TOKEN_LOG")
run_im ns-token --blob-cache "" --auth "$IM_WORK/auth-ns-token.json" --images "$IM_WORK/images-ns-token.json" --log ""
cat "$IM_WORK/ns-token.out"
# (the token log is read before raw_digest below asks for tokens itself, as alice)
tail -n +"$((dst_before + 1))" "$TDST_TOKEN_LOG" >"$IM_WORK/ns-token.tokens"
scopes_of() { # USER: distinct repositories USER got tokens for during the run
  awk -v u="$1" '$3 == u && $5 == 200 { print $4 }' "$IM_WORK/ns-token.tokens" |
    tr ';' '\n' | sed 's/^repository:\(.*\):[^:]*$/\1/' | sort -u | tr '\n' ' '
}
assert_eq "$rc" 0 "namespace keys (token): exit code 0"
same_digest "$TSRC_ADDR/ns/multi:v1" "$TDST_ADDR/team/app6:v1" "namespace keys (token): team/app6 copied"
same_digest "$TSRC_ADDR/ns/multi:v1" "$TDST_ADDR/other/app6:v1" "namespace keys (token): other/app6 copied"
assert_eq "$(scopes_of alice)" "team/app6 " "namespace keys (token): alice's tokens only for team/app6"
assert_eq "$(scopes_of bob)" "other/app6 " "namespace keys (token): bob's tokens only for other/app6"

# ---------------------------------------------------------------- 7. tokens for many repositories
# A token service that takes 300 ms per answer, and 6 repositories at each end. A re-sync fetches
# each repository's pull token once at each end, and the fetches run side by side: some overlap in
# time, by the arrival and answer times the token server logs (a fetch one after the other, as
# when one lock was held across it, overlaps none).
TOKEN_DELAY_MS=300 start_registry slowsrc token
TOKEN_DELAY_MS=300 start_registry slowdst token
images="{"
for n in 1 2 3 4 5 6; do
  seed "$L" single "$SLOWSRC_ADDR/many/app$n:v1"
  images+="\"$SLOWSRC_ADDR/many/app$n\": \"$SLOWDST_ADDR/many/app$n\","
done
echo "${images%,}}" >"$IM_WORK/images-many.json"
cat >"$IM_WORK/auth-many.json" <<JSON
{"$SLOWSRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
 "$SLOWDST_ADDR": {"username": "alice", "password": "alicepass", "insecure": true}}
JSON
run_im many-copy --blob-cache "" --auth "$IM_WORK/auth-many.json" --images "$IM_WORK/images-many.json" --log ""
assert_eq "$rc" 0 "many repositories: copied"
src_before=$(wc -l <"$SLOWSRC_TOKEN_LOG")
dst_before=$(wc -l <"$SLOWDST_TOKEN_LOG")
run_im many-resync --blob-cache "" --auth "$IM_WORK/auth-many.json" --images "$IM_WORK/images-many.json" --log ""
cat "$IM_WORK/many-resync.out"
assert_eq "$rc" 0 "many repositories: re-sync"
assert_eq "$(grep -c "OK .* already present, skipped" "$IM_WORK/many-resync.out")" 6 "many repositories: 6 images already there"
for reg in SLOWSRC SLOWDST; do
  log_var=${reg}_TOKEN_LOG
  before=$([ "$reg" == SLOWSRC ] && echo "$src_before" || echo "$dst_before")
  tail -n +"$((before + 1))" "${!log_var}" | awk '$3 == "alice" && $5 == 200' >"$IM_WORK/$reg.many"
  assert_eq "$(wc -l <"$IM_WORK/$reg.many")" 6 "many repositories: $reg: 6 tokens fetched"
  assert_eq "$(awk '{ print $4 }' "$IM_WORK/$reg.many" | sort -u | wc -l)" 6 "many repositories: $reg: one per repository"
  overlaps=$(awk '{ split(substr($NF, 4), t, "-"); a[NR] = t[1]; b[NR] = t[2] }
    END { n = 0; for (i = 1; i <= NR; i++) for (j = i + 1; j <= NR; j++) if (a[i] < b[j] && a[j] < b[i]) n++; print n }' \
    "$IM_WORK/$reg.many")
  [ "$overlaps" -gt 0 ] || fail "many repositories: $reg: the 6 token fetches ran one after the other"
  pass "many repositories: $reg: token fetches side by side ($overlaps overlapping pairs)"
done

echo "test_auth: all checks passed"

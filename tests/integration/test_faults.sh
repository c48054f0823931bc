#!/usr/bin/env bash
# Network and registry faults, injected by tests/faultproxy/fault_proxy between image-migrator and
# real docker-registry processes: resets in the middle of a blob download (resumed with Range, also
# again and again, from a server that ignores Range and from one whose 206 starts at the wrong byte)
# and of a blob upload, bursts of 5xx, 429 with Retry-After, a body cut short, a stall, a corrupted
# byte, tokens expiring mid-run, the source registry killed and restarted mid-run, and a permanent
# 500. Every transient fault must be survived (exit 0, every image digest-identical at the
# destination); every permanent one must fail exactly the images it hits (exit 1, FAILED lines for
# them only, their tags absent at the destination).
# Prints a table "scenario | result | detail" at the end; exits 1 if any scenario misbehaved.
#
# Environment: IM_BIN (default <repo>/build/image-migrator), FAULT_PROXY_BIN (default
# <build>/tests/faultproxy/fault_proxy), FAULTS_ONLY="1 7b" runs only those scenarios, plus lib.sh's.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
# Runs pass --blob-cache "": what each copies, earlier runs put into other repositories of the same
# registry, and the copy itself is what is tested (not a mount from the blob memory).
T0=$(date +%s.%N)
FAULT_PROXY_BIN=${FAULT_PROXY_BIN:-${IM_BUILD_DIR:-$IM_REPO_ROOT/build}/tests/faultproxy/fault_proxy}
[ -x "$IM_BIN" ] || fail "IM_BIN ($IM_BIN) is not an executable"
[ -x "$FAULT_PROXY_BIN" ] || fail "FAULT_PROXY_BIN ($FAULT_PROXY_BIN) is not an executable; build the fault_proxy target"

# ----------------------------------------------------------------- helpers

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }


# hits LOG METHOD_REGEX PATH_SUBSTRING ACTION_PREFIX: requests the proxy really applied ACTION to.
hits() {
  awk -v m="^($2)\$" -v p="$3" -v a="$4" '
    $2 ~ m && index($3, p) > 0 {
      act = $5; for (i = 6; i <= NF; i++) act = act " " $i
      if (index(act, a) == 1 && index(act, "(not-reached)") == 0) n++
    }
    END { print n + 0 }' "$1"
}

# requests LOG METHOD_REGEX PATH_SUBSTRING: how many such requests the proxy saw.
requests() {
  awk -v m="^($2)\$" -v p="$3" '$2 ~ m && index($3, p) > 0 { n++ } END { print n + 0 }' "$1"
}

# await_requests LOG METHOD_REGEX PATH_SUBSTRING N: waits up to 6 s for N such requests in the log. The
# proxy logs a request when it is over: a stalled one only once its stall is up, after the run.
await_requests() {
  local i
  for ((i = 0; i < 60; i++)); do
    [ "$(requests "$1" "$2" "$3")" -ge "$4" ] && return 0
    sleep 0.1
  done
}

# partial_gets DIGEST: GETs of that blob the source proxy saw answered 206 (resumed with Range).
partial_gets() {
  awk -v d="$1" '$2 == "GET" && index($3, d) > 0 && $4 == 206 { n++ } END { print n + 0 }' "$SRCP_PLOG"
}

# blob_puts REPOSITORY DIGEST: upload requests (PUT/PATCH) carrying that blob's digest at the destination proxy.
blob_puts() {
  awk -v p="/v2/$1/blobs/uploads/" -v d="${2#sha256:}" \
    '($2 == "PUT" || $2 == "PATCH") && index($3, p) > 0 && index($3, d) > 0 { n++ } END { print n + 0 }' "$DSTP_PLOG"
}

# resumed_at DIGEST: the byte offsets image-migrator said it resumed that blob's download at.
resumed_at() {
  grep -E "(copying|downloading) blob $1 " "$OUT" | sed -n 's/.*resuming the download at byte \([0-9]*\) of.*/\1/p' | tr '\n' ' ' | sed 's/ $//'
}

# Scenario bookkeeping: each scenario runs in a subshell (set -e) and writes its problems (serr) and its
# detail text (sdetail) to files; run_scenario turns them into a table row.
SERR=()
ROWS=()
BAD=0
DETAIL=

wanted() { [ -z "${FAULTS_ONLY:-}" ] || [[ " $FAULTS_ONLY " == *" $1 "* ]]; }

# run_scenario ID TITLE EXPECTED(SURVIVED|FAILED-AS-EXPECTED) FUNCTION
run_scenario() {
  local id=$1 title=$2 expected=$3 fn=$4 t rc=0 result
  wanted "$id" || return 0
  SERR=()
  DETAIL=
  t=$(now)
  im_log "scenario $id: $title"
  # Each scenario starts with no faults and empty proxy logs.
  set_rules "$SRCP_RULES"
  set_rules "$DSTP_RULES"
  : >"$SRCP_PLOG"
  : >"$DSTP_PLOG"
  set +e
  (set -e; "$fn" "$id") >"$IM_WORK/scenario-$id.txt" 2>&1
  rc=$?
  set -e
  # The subshell hands its findings back through files.
  [ -f "$IM_WORK/scenario-$id.err" ] && mapfile -t SERR <"$IM_WORK/scenario-$id.err"
  [ -f "$IM_WORK/scenario-$id.detail" ] && DETAIL=$(cat "$IM_WORK/scenario-$id.detail")
  [ "$rc" == 0 ] || SERR+=("scenario script stopped (status $rc); see below")
  set_rules "$SRCP_RULES"
  set_rules "$DSTP_RULES"
  cp "$SRCP_PLOG" "$IM_WORK/scenario-$id.srcp.log"
  cp "$DSTP_PLOG" "$IM_WORK/scenario-$id.dstp.log"
  if [ ${#SERR[@]} == 0 ]; then
    result=$expected
    pass "scenario $id ($title): $result"
  else
    result="MISBEHAVED (expected $expected)"
    BAD=1
    {
      echo "---- scenario $id ($title) misbehaved:"
      printf '  - %s\n' "${SERR[@]}"
      echo "  output of the scenario:"
      sed 's/^/    | /' "$IM_WORK/scenario-$id.txt" | tail -n 60
      echo "  source proxy log:"
      cut -c1-220 "$IM_WORK/scenario-$id.srcp.log" | sed 's/^/    | /' | tail -n 40
      echo "  destination proxy log:"
      cut -c1-220 "$IM_WORK/scenario-$id.dstp.log" | sed 's/^/    | /' | tail -n 40
    } >&2
    DETAIL="$DETAIL; ${SERR[*]}"
  fi
  ROWS+=("$id|$title|$result|${DETAIL#; } ($(since "$t")s)")
}

# Inside a scenario (a subshell): record a problem / the detail text.
serr() { printf '%s\n' "$*" >>"$IM_WORK/scenario-$SCEN.err"; }
sdetail() { printf '%s' "$*" >"$IM_WORK/scenario-$SCEN.detail"; }
s_eq() { [ "$1" == "$2" ] || serr "$3: got '$1', expected '$2'"; }

# ----------------------------------------------------------------- registries, proxies, images

start_registry src plain
start_registry dst plain
start_proxy srcp "$SRC_ADDR"
start_proxy dstp "$DST_ADDR"

L=$IM_WORK/layout
make_layout "$L" multi --layers 2 --layer-size 1200000 --platforms linux/amd64,linux/arm64 --seed fmulti >/dev/null
make_layout "$L" a --layers 2 --layer-size 3000000 --seed fa >/dev/null
make_layout "$L" b --layers 2 --layer-size 2000000 --seed fb >/dev/null
make_layout "$L" c --layers 2 --layer-size 1000000 --seed fc >/dev/null
seed "$L" multi "$SRC_ADDR/ns/multi:v1"
seed "$L" a "$SRC_ADDR/ns/a:1"
seed "$L" b "$SRC_ADDR/ns/b:1"
seed "$L" c "$SRC_ADDR/ns/c:1"

# Image name -> source reference (tag) and digest.
declare -A REF=([multi]=ns/multi:v1 [a]=ns/a:1 [b]=ns/b:1 [c]=ns/c:1)
declare -A DIGEST
for i in multi a b c; do DIGEST[$i]=$(raw_digest "$SRC_ADDR/${REF[$i]}"); done
layer() { raw_manifest "$SRC_ADDR/${REF[$1]}" | jq -r ".layers[$2].digest"; }
LAYER_A0=$(layer a 0)
LAYER_A1=$(layer a 1)
LAYER_B1=$(layer b 1)
LAYER_C0=$(layer c 0)
LAYER_C1=$(layer c 1)
pass "seeded a 2-platform index and 3 images (layers 1-3 MB) in $(since "$T0")s"

cat >"$IM_WORK/auth.json" <<JSON
{"$SRCP_ADDR": {"insecure": true}, "$DSTP_ADDR": {"insecure": true},
 "$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true}}
JSON

# images_json SCEN IMAGE...: source (through the source proxy) -> destination proxy, repository SCEN/IMAGE.
images_json() {
  local s=$1 i first=1
  shift
  {
    echo "{"
    for i in "$@"; do
      [ $first == 1 ] || echo ","
      first=0
      printf '  "%s/%s": "%s/%s/%s"' "${SRC_FROM:-$SRCP_ADDR}" "${REF[$i]}" "$DSTP_ADDR" "$s" "$i"
    done
    echo
    echo "}"
  }
}

# migrate SCEN [image-migrator options]: runs image-migrator on $IM_WORK/images-SCEN.json; sets RC, ELAPSED, OUT.
migrate() {
  local s=$1 t
  shift
  OUT=$IM_WORK/out-$s
  RC=0
  t=$(now)
  im_run timeout 40 "$IM_BIN" --blob-cache "" --auth "${AUTH_FILE:-$IM_WORK/auth.json}" --images "$IM_WORK/images-$s.json" \
    --log "" "$@" >"$OUT" 2>&1 || RC=$?
  ELAPSED=$(since "$t")
  cat "$OUT"
  [ "$RC" != 124 ] || serr "image-migrator did not finish within 40 s"
}

# final_failures: source references with a FAILED line and no OK line in $OUT.
final_failures() {
  local src
  { grep -o 'FAILED [^ ]* ->' "$OUT" || true; } | awk '{print $2}' | sort -u | while read -r src; do
    grep -q "OK $src -> " "$OUT" || echo "$src"
  done
}

# verify_copied SCEN IMAGE...: digest-identical at the destination (read directly, not through the
# proxy); the index also pulls back with every platform and every blob verified.
verify_copied() {
  local s=$1 i d n=0
  shift
  for i in "$@"; do
    d=$(raw_digest "$DST_ADDR/$s/$i:${REF[$i]##*:}" 2>/dev/null) || d="(missing)"
    if [ "$d" == "${DIGEST[$i]}" ]; then
      n=$((n + 1))
    else
      serr "$s/$i at the destination: $d, expected ${DIGEST[$i]}"
    fi
    grep -q "OK ${SRC_FROM:-$SRCP_ADDR}/${REF[$i]} -> " "$OUT" || serr "no OK line for ${REF[$i]}"
    if [ "$i" == multi ]; then
      pull_all_platforms "$DST_ADDR/$s/$i:${REF[$i]##*:}" >/dev/null 2>&1 || serr "$s/multi: not every platform pulls back"
    fi
  done
  VERIFIED=$n
}

# verify_absent SCEN IMAGE...: no tag at the destination.
verify_absent() {
  local s=$1 i code
  shift
  for i in "$@"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' \
      -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
      "http://$DST_ADDR/v2/$s/$i/manifests/${REF[$i]##*:}")
    [ "$code" == 404 ] || serr "tag $s/$i:${REF[$i]##*:} visible at the destination (HTTP $code)"
  done
}

# expect_survived SCEN IMAGE...: exit 0, nothing failed for good, every image identical.
expect_survived() {
  local s=$1
  shift
  s_eq "$RC" 0 "exit status"
  s_eq "$(final_failures | tr '\n' ' ')" "" "images failed for good"
  grep -q "Images($#) migration finished, 0 images tasks failed" "$OUT" || serr "summary line missing or counts failures"
  verify_copied "$s" "$@"
}

# expect_failed SCEN "FAILED IMAGES" OK-IMAGE...: exit 1, FAILED exactly for those, tags absent.
expect_failed() {
  local s=$1 failed=$2 i want=()
  shift 2
  s_eq "$RC" 1 "exit status"
  for i in $failed; do want+=("${SRC_FROM:-$SRCP_ADDR}/${REF[$i]}"); done
  s_eq "$(final_failures | sort | tr '\n' ' ')" "$(printf '%s\n' "${want[@]}" | sort | tr '\n' ' ')" "images FAILED"
  local n_failed n_all
  n_failed=$(wc -w <<<"$failed")
  n_all=$((n_failed + $#))
  grep -q "Images($n_all) migration finished, $n_failed images tasks failed" "$OUT" ||
    serr "summary line missing or does not count $n_failed failed image(s) of $n_all"
  # shellcheck disable=SC2086
  verify_absent "$s" $failed
  verify_copied "$s" "$@"
}

ALL=(multi a b c)

# ----------------------------------------------------------------- scenarios

s1() { # a reset in the middle of a source blob download: resumed where it broke, one upload
  SCEN=$1
  set_rules "$SRCP_RULES" "GET /v2/ns/a/blobs/$LAYER_A0 reset-response-after=1000000"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 1
  expect_survived "s$1" "${ALL[@]}"
  local h n at
  h=$(hits "$SRCP_PLOG" GET "$LAYER_A0" reset-response-after)
  n=$(requests "$SRCP_PLOG" GET "$LAYER_A0")
  at=$(resumed_at "$LAYER_A0")
  s_eq "$h" 1 "downloads reset"
  s_eq "$n" 2 "GETs of the reset layer (the broken one, then the rest)"
  s_eq "$(partial_gets "$LAYER_A0")" 1 "GETs of the reset layer answered 206"
  s_eq "$(blob_puts "s$1/a" "$LAYER_A0")" 1 "uploads of the reset layer (the upload must go on)"
  [[ "$at" =~ ^[1-9][0-9]*$ ]] || serr "no single 'resuming the download at byte N' line for the layer (got '$at')"
  sdetail "rc=$RC; 3 MB layer reset (RST) after 1 MB: resumed at byte $at (206), 1 upload; $VERIFIED/4 identical"
}

s2() { # a reset in the middle of a destination blob upload
  SCEN=$1
  set_rules "$DSTP_RULES" "PUT|PATCH ^/v2/s$1/b/blobs/uploads/.*digest=sha256%3A${LAYER_B1#sha256:} reset-request-after=1000000"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 1
  expect_survived "s$1" "${ALL[@]}"
  local h n
  h=$(hits "$DSTP_PLOG" 'PUT|PATCH' "/v2/s$1/b/blobs/uploads/" reset-request-after)
  n=$(blob_puts "s$1/b" "$LAYER_B1")
  s_eq "$h" 1 "uploads reset"
  [ "$n" -ge 2 ] || serr "the reset layer was not uploaded again ($n PUTs)"
  sdetail "rc=$RC; 2 MB upload (PUT body) reset after 1 MB, $n PUTs; $VERIFIED/4 identical"
}

s3() { # a burst of 500/502/503 on manifests and blobs, two of each
  SCEN=$1
  set_rules "$SRCP_RULES" \
    "HEAD|GET ^/v2/ns/multi/manifests/ status=502 count=2" \
    "GET ^/v2/ns/a/blobs/ status=503 count=2" \
    "GET ^/v2/ns/c/manifests/sha256: status=500 count=2"
  set_rules "$DSTP_RULES" \
    "PUT ^/v2/s$1/b/manifests/ status=500 count=2" \
    "POST ^/v2/s$1/c/blobs/uploads/ status=503 count=2" \
    "HEAD ^/v2/s$1/a/blobs/ status=502 count=2"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 1
  expect_survived "s$1" "${ALL[@]}"
  local total=0 h
  for h in "$(hits "$SRCP_PLOG" 'HEAD|GET' /v2/ns/multi/manifests/ status=502)" \
    "$(hits "$SRCP_PLOG" GET /v2/ns/a/blobs/ status=503)" \
    "$(hits "$SRCP_PLOG" GET /v2/ns/c/manifests/sha256: status=500)" \
    "$(hits "$DSTP_PLOG" PUT "/v2/s$1/b/manifests/" status=500)" \
    "$(hits "$DSTP_PLOG" POST "/v2/s$1/c/blobs/uploads/" status=503)" \
    "$(hits "$DSTP_PLOG" HEAD "/v2/s$1/a/blobs/" status=502)"; do
    s_eq "$h" 2 "injected errors per rule"
    total=$((total + h))
  done
  sdetail "rc=$RC; $total injected 5xx (6 rules x 2: manifest HEAD/GET/PUT, blob GET/HEAD, upload POST); $VERIFIED/4 identical"
}

s4() { # 429 with Retry-After: 1
  SCEN=$1
  set_rules "$SRCP_RULES" "HEAD|GET ^/v2/ns/c/manifests/ status=429 retry-after=1 count=1"
  images_json "s$1" c a >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 0
  expect_survived "s$1" c a
  local line t429 method path tnext gap
  line=$(awk '$4 == 429' "$SRCP_PLOG" | head -n1)
  [ -n "$line" ] || { serr "no 429 was served"; return 0; }
  read -r t429 method path _ <<<"$line"
  tnext=$(awk -v t="$t429" -v m="$method" -v p="$path" '$1 > t && $2 == m && $3 == p { print $1; exit }' "$SRCP_PLOG")
  [ -n "$tnext" ] || { serr "the request answered 429 was never repeated"; return 0; }
  gap=$(awk -v a="$t429" -v b="$tnext" 'BEGIN { printf "%.2f", b - a }')
  awk -v g="$gap" 'BEGIN { exit !(g >= 1.0) }' || serr "repeated after $gap s, before Retry-After: 1 elapsed"
  sdetail "rc=$RC; $method $path repeated $gap s after the 429; run ${ELAPSED}s; $VERIFIED/2 identical"
}

s5() { # a blob body cut short (FIN before Content-Length): the rest asked for, one upload
  SCEN=$1
  set_rules "$SRCP_RULES" "GET /v2/ns/b/blobs/$LAYER_B1 truncate-response=700000"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 1
  expect_survived "s$1" "${ALL[@]}"
  local h n at
  h=$(hits "$SRCP_PLOG" GET "$LAYER_B1" truncate-response)
  n=$(requests "$SRCP_PLOG" GET "$LAYER_B1")
  at=$(resumed_at "$LAYER_B1")
  s_eq "$h" 1 "bodies truncated"
  s_eq "$n" 2 "GETs of the truncated layer"
  s_eq "$(partial_gets "$LAYER_B1")" 1 "GETs of the truncated layer answered 206"
  s_eq "$(blob_puts "s$1/b" "$LAYER_B1")" 1 "uploads of the truncated layer"
  s_eq "$at" 700000 "offset the download was resumed at"
  sdetail "rc=$RC; 2 MB layer closed after 700 kB: resumed at byte $at (206), 1 upload; $VERIFIED/4 identical"
}

s5b() { # a body cut after 100 bytes: they come with the headers, before the upload is open; resumed all the same
  SCEN=$1
  set_rules "$SRCP_RULES" "GET /v2/ns/c/blobs/$LAYER_C0 truncate-response=100"
  images_json "s$1" c >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 0
  expect_survived "s$1" c
  s_eq "$(requests "$SRCP_PLOG" GET "$LAYER_C0")" 2 "GETs of the truncated layer"
  s_eq "$(partial_gets "$LAYER_C0")" 1 "GETs of the truncated layer answered 206"
  s_eq "$(blob_puts "s$1/c" "$LAYER_C0")" 1 "uploads of the truncated layer"
  s_eq "$(resumed_at "$LAYER_C0")" 100 "offset the download was resumed at"
  sdetail "rc=$RC; 1 MB layer closed after 100 bytes: resumed at byte 100 (206), 1 upload; $VERIFIED/1 identical"
}

s6() { # a stall shorter than the low-speed timeout: slow, but survives
  SCEN=$1
  set_rules "$SRCP_RULES" "GET /v2/ns/c/blobs/$LAYER_C0 stall-response-after=300000,3"
  images_json "s$1" c b >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 0
  expect_survived "s$1" c b
  local h n
  h=$(hits "$SRCP_PLOG" GET "$LAYER_C0" stall-response-after)
  n=$(requests "$SRCP_PLOG" GET "$LAYER_C0")
  s_eq "$h" 1 "stalled downloads"
  s_eq "$n" 1 "downloads of the stalled layer (the stall must not abort it)"
  awk -v e="$ELAPSED" 'BEGIN { exit !(e >= 3.0) }' || serr "run took ${ELAPSED}s, shorter than the 3 s stall"
  sdetail "rc=$RC; 3 s pause after 300 kB of a 1 MB layer, one GET, run ${ELAPSED}s; $VERIFIED/2 identical"
}

s6b() { # a stall longer than --stall-timeout: noticed after 2 s, the download resumed from where it stopped
  SCEN=$1
  set_rules "$SRCP_RULES" "GET /v2/ns/c/blobs/$LAYER_C1 stall-response-after=300000,5"
  images_json "s$1" c >"$IM_WORK/images-$1.json"
  IMAGE_MIGRATOR_STALL_TIMEOUT=2 migrate "$1" -w 2 -r 0
  expect_survived "s$1" c
  await_requests "$SRCP_PLOG" GET "$LAYER_C1" 2
  s_eq "$(requests "$SRCP_PLOG" GET "$LAYER_C1")" 2 "GETs of the stalled layer"
  s_eq "$(partial_gets "$LAYER_C1")" 1 "GETs of the stalled layer answered 206"
  s_eq "$(blob_puts "s$1/c" "$LAYER_C1")" 1 "uploads of the stalled layer"
  grep -q "no data moved for 2 s (stall timeout); resuming the download at byte 300000 " "$OUT" ||
    serr "no 'no data moved for 2 s ... resuming at byte 300000' line"
  awk -v e="$ELAPSED" 'BEGIN { exit !(e >= 2.0 && e < 4.5) }' || serr "run took ${ELAPSED}s: the 2 s stall timeout was not applied as set"
  sdetail "rc=$RC; 5 s stall after 300 kB, IMAGE_MIGRATOR_STALL_TIMEOUT=2: cut after 2 s, resumed at 300000 (206), 1 upload, run ${ELAPSED}s"
}

s7a() { # one corrupted byte, once: the next pass downloads again and succeeds
  SCEN=$1
  set_rules "$SRCP_RULES" "GET /v2/ns/a/blobs/$LAYER_A1 corrupt-response-byte=1234567"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 1
  expect_survived "s$1" "${ALL[@]}"
  local h n
  h=$(hits "$SRCP_PLOG" GET "$LAYER_A1" corrupt-response-byte)
  n=$(requests "$SRCP_PLOG" GET "$LAYER_A1")
  s_eq "$h" 1 "corrupted downloads"
  [ "$n" -ge 2 ] || serr "the corrupted layer was not downloaded again ($n GETs)"
  grep -q "hashes to sha256:" "$OUT" || serr "the digest mismatch was not reported"
  sdetail "rc=$RC; byte 1234567 of a 3 MB layer flipped once: mismatch reported, fetched $n times; $VERIFIED/4 identical"
}

s7b() { # a corrupted byte every time: that image fails with a digest mismatch, its tag never appears
  SCEN=$1
  set_rules "$SRCP_RULES" "GET /v2/ns/c/blobs/$LAYER_C1 corrupt-response-byte=99 count=inf"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 1
  expect_failed "s$1" c multi a b
  grep -q "FAILED $SRCP_ADDR/ns/c:1 -> .*hashes to sha256:" "$OUT" || serr "FAILED line without the digest mismatch"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -I --noproxy '*' "http://$DST_ADDR/v2/s$1/c/blobs/$LAYER_C1")
  s_eq "$code" 404 "corrupted blob in the destination repository"
  sdetail "rc=$RC; ns/c FAILED (digest mismatch, $(requests "$SRCP_PLOG" GET "$LAYER_C1") attempts), tag and blob absent; $VERIFIED/3 others identical"
}

s7c() { # a corrupted byte in an index, every time: caught by its digest, the image fails, no tag
  SCEN=$1
  local off
  # Turn "os":"linux" into "os":"minux": still valid JSON, only the digest can tell.
  off=$(raw_manifest "$SRC_ADDR/${REF[multi]}" | grep -bo '"os":"linux"' | head -n1 | cut -d: -f1)
  set_rules "$SRCP_RULES" "GET /v2/ns/multi/manifests/${DIGEST[multi]} corrupt-response-byte=$((off + 6)) count=inf"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 1
  expect_failed "s$1" multi a b c
  grep -q "FAILED $SRCP_ADDR/ns/multi:v1 -> .*hashes to sha256:" "$OUT" || serr "FAILED line without the digest mismatch"
  s_eq "$(hits "$SRCP_PLOG" GET "/v2/ns/multi/manifests/${DIGEST[multi]}" corrupt-response-byte)" 2 "corrupted index downloads"
  sdetail "rc=$RC; \"linux\" -> \"minux\" in the index (valid JSON): ns/multi FAILED (digest mismatch), tag absent; $VERIFIED/3 others identical"
}

s8() { # tokens (TTL 2 s) expiring mid-run
  SCEN=$1
  set_rules "$TSRCP_RULES" "GET /v2/ns/a/blobs/$LAYER_A0 stall-response-after=200000,2.2" \
    "GET /v2/ns/c/blobs/$LAYER_C0 stall-response-after=200000,2.2"
  : >"$TSRCP_PLOG"
  local tok_before tok_after n401
  tok_before=$(token_requests tsrc)
  SRC_FROM=$TSRCP_ADDR images_json "s$1" a c >"$IM_WORK/images-$1.json"
  SRC_FROM=$TSRCP_ADDR AUTH_FILE=$IM_WORK/auth-token.json migrate "$1" -w 1 -r 1
  SRC_FROM=$TSRCP_ADDR expect_survived "s$1" a c
  set_rules "$TSRCP_RULES"
  cp "$TSRCP_PLOG" "$IM_WORK/scenario-$1.tsrcp.log"
  tok_after=$(token_requests tsrc)
  n401=$(awk '$4 == 401 && $3 != "/v2/"' "$TSRCP_PLOG" | wc -l)
  s_eq "$(hits "$TSRCP_PLOG" GET /blobs/ stall-response-after)" 2 "stalled downloads"
  awk -v e="$ELAPSED" 'BEGIN { exit !(e > 4.0) }' || serr "run took ${ELAPSED}s, not longer than two token lifetimes"
  [ $((tok_after - tok_before)) -ge 2 ] || serr "only $((tok_after - tok_before)) token(s) fetched during a ${ELAPSED}s run with 2 s tokens"
  sdetail "rc=$RC; run ${ELAPSED}s with 2 s tokens: $((tok_after - tok_before)) tokens fetched, $n401 answer(s) 401 (first challenge included); $VERIFIED/2 identical"
}

s8b() { # a download stalls past its 2 s token's life, then resumes: with a new token, not the expired one
  SCEN=$1
  set_rules "$TSRCP_RULES" "GET /v2/ns/a/blobs/$LAYER_A0 stall-response-after=1000000,4"
  : >"$TSRCP_PLOG"
  local tok_before tok_after codes
  tok_before=$(token_requests tsrc)
  SRC_FROM=$TSRCP_ADDR images_json "s$1" a >"$IM_WORK/images-$1.json"
  SRC_FROM=$TSRCP_ADDR AUTH_FILE=$IM_WORK/auth-token.json IMAGE_MIGRATOR_STALL_TIMEOUT=3 migrate "$1" -w 1 -r 0
  SRC_FROM=$TSRCP_ADDR expect_survived "s$1" a
  await_requests "$TSRCP_PLOG" GET "$LAYER_A0" 2
  set_rules "$TSRCP_RULES"
  cp "$TSRCP_PLOG" "$IM_WORK/scenario-$1.tsrcp.log"
  tok_after=$(token_requests tsrc)
  codes=$(awk -v d="$LAYER_A0" '$2 == "GET" && index($3, d) > 0 { print $4 }' "$TSRCP_PLOG" | sort | tr '\n' ' ')
  s_eq "$codes" "200 206 " "answers to the layer's GETs (the stalled one, then the rest with a fresh token)"
  s_eq "$(blob_puts "s$1/a" "$LAYER_A0")" 1 "uploads of the layer"
  [ $((tok_after - tok_before)) -ge 2 ] || serr "no new token fetched for the resumed download"
  sdetail "rc=$RC; 2 s tokens, stalled 3 s after 1 MB: resumed at byte $(resumed_at "$LAYER_A0") with a new token (206, no 401), 1 upload; $((tok_after - tok_before)) tokens"
}

s9() { # the source registry killed and restarted during the run
  SCEN=$1
  # Slow every layer download down a little so that the run lasts a few seconds.
  set_rules "$SRCP_RULES" "GET ^/v2/ns/[^/]+/blobs/sha256: stall-response-after=400000,0.4 count=inf"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  local starts_before starts_after bg
  starts_before=$(grep -c '^--- start' "$SRC_LOG")
  (
    sleep 0.5
    stop_registry src
    echo "$(now) registry stopped" >>"$IM_WORK/scenario-$1.restart"
    sleep 1
    restart_registry src
    echo "$(now) registry restarted" >>"$IM_WORK/scenario-$1.restart"
  ) >>"$IM_WORK/scenario-$1.restart" 2>&1 &
  bg=$!
  migrate "$1" -w 1 -r 3
  wait "$bg" || serr "stop/restart of the registry failed: $(cat "$IM_WORK/scenario-$1.restart")"
  expect_survived "s$1" "${ALL[@]}"
  starts_after=$(grep -c '^--- start' "$SRC_LOG")
  s_eq "$((starts_after - starts_before))" 1 "registry restarts"
  local down
  down=$(awk '$4 == 502 || $5 ~ /upstream/' "$SRCP_PLOG" | wc -l)
  [ "$down" -ge 1 ] || serr "no request hit the stopped registry (the run ended before the kill?)"
  sdetail "rc=$RC; killed 0.5 s in, back 1 s later; $down requests cut/refused meanwhile, $(grep -c 'retrying in' "$OUT") in-task retries, run ${ELAPSED}s; $VERIFIED/4 identical"
}

s10() { # a permanent 500 on one image's manifest
  SCEN=$1
  set_rules "$SRCP_RULES" "HEAD|GET ^/v2/ns/b/manifests/ status=500 count=inf"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 1
  expect_failed "s$1" b multi a c
  sdetail "rc=$RC; ns/b FAILED after $(requests "$SRCP_PLOG" 'HEAD|GET' /v2/ns/b/manifests/) manifest requests, tag absent; $VERIFIED/3 others identical"
}

s10b() { # every download of one arm64 layer of the index reset: no partial index under the tag
  SCEN=$1
  local arm layer
  arm=$(raw_manifest "$SRC_ADDR/${REF[multi]}" | jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest')
  layer=$(raw_manifest "$SRC_ADDR/ns/multi@$arm" | jq -r '.layers[1].digest')
  # Before the first body byte: a download that gets nowhere is not resumed (the blob is retried whole).
  set_rules "$SRCP_RULES" "GET /v2/ns/multi/blobs/$layer reset-response-after=0 count=inf"
  images_json "s$1" "${ALL[@]}" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 1
  expect_failed "s$1" multi a b c
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "http://$DST_ADDR/v2/s$1/multi/tags/list")
  sdetail "rc=$RC; arm64 layer reset after its headers on all $(requests "$SRCP_PLOG" GET "$layer") attempts: ns/multi FAILED, no tag (tags/list $code); $VERIFIED/3 others identical"
}

s11() { # resets again and again, each after 700 kB: resumed each time from the new offset, one upload
  SCEN=$1
  local size n at
  size=$(raw_manifest "$SRC_ADDR/${REF[a]}" | jq -r '.layers[0].size')
  set_rules "$SRCP_RULES" "GET /v2/ns/a/blobs/$LAYER_A0 reset-response-after=700000 count=3"
  images_json "s$1" a b >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 0
  expect_survived "s$1" a b
  n=$(requests "$SRCP_PLOG" GET "$LAYER_A0")
  at=$(resumed_at "$LAYER_A0")
  s_eq "$(hits "$SRCP_PLOG" GET "$LAYER_A0" reset-response-after)" 3 "downloads reset"
  s_eq "$n" 4 "GETs of the layer"
  s_eq "$(partial_gets "$LAYER_A0")" 3 "GETs answered 206"
  s_eq "$(blob_puts "s$1/a" "$LAYER_A0")" 1 "uploads of the layer"
  # Each resume starts further on than the one before, and none of them before the first break.
  awk -v list="$at" 'BEGIN { n = split(list, o, " "); if (n != 3) exit 1; for (i = 2; i <= n; i++) if (o[i] <= o[i-1]) exit 1 }' ||
    serr "resume offsets '$at': expected 3, each past the previous one"
  grep -q "copied [0-9]* bytes in [0-9.]*s; 3 broken download(s) resumed where they stopped" "$OUT" ||
    serr "the run's closing lines do not count the 3 resumed downloads"
  sdetail "rc=$RC; $size-byte layer reset after every 700 kB, 3 times: resumed at $at, $n GETs, 1 upload, -r 0; $VERIFIED/2 identical"
}

# resumed_with SCEN ACTION: image a copied (-r 0) while its layer's download is reset after 1 MB and
# the resumed GET gets the proxy ACTION; sets CODES to the answers to the layer's GETs, in order.
resumed_with() {
  set_rules "$SRCP_RULES" "GET /v2/ns/a/blobs/$LAYER_A0 reset-response-after=1000000" \
    "GET /v2/ns/a/blobs/$LAYER_A0 $2 after=1"
  images_json "s$1" a >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 0
  expect_survived "s$1" a
  CODES=$(awk -v d="$LAYER_A0" '$2 == "GET" && index($3, d) > 0 { print $4 }' "$SRCP_PLOG" | tr '\n' ' ')
}

s11b() { # the resumed request's Range is dropped (a server that ignores it): 200, the streamed bytes skipped
  SCEN=$1
  resumed_with "$1" drop-header=range
  s_eq "$CODES" "200 200 " "answers to the layer's GETs (the second one without its Range)"
  s_eq "$(hits "$SRCP_PLOG" GET "$LAYER_A0" drop-header)" 1 "GETs forwarded without Range"
  s_eq "$(blob_puts "s$1/a" "$LAYER_A0")" 1 "uploads of the layer"
  sdetail "rc=$RC; reset after 1 MB, Range ignored on the resume: whole body again, first $(resumed_at "$LAYER_A0") bytes skipped, 1 upload; $VERIFIED/1 identical"
}

s11c() { # the resumed request's 206 starts before the byte asked for: refused, the blob starts over
  SCEN=$1
  local at puts
  resumed_with "$1" shift-range=1000
  s_eq "$CODES" "200 206 200 " "answers to the layer's GETs (reset, misplaced 206, whole blob again)"
  at=$(resumed_at "$LAYER_A0")
  [[ "$at" =~ ^[1-9][0-9]*$ ]] || serr "no single 'resuming the download at byte N' line for the layer (got '$at')"
  grep -q "Range: bytes=$at-) answered HTTP 206 with Content-Range: bytes $((at - 1000))-" "$OUT" ||
    serr "no error naming the misplaced Content-Range"
  # The upload that had the first $at bytes is abandoned, never finished with the misplaced bytes.
  puts=$(awk -v p="/v2/s$1/a/blobs/uploads/" -v d="${LAYER_A0#sha256:}" \
    '$2 == "PUT" && index($3, p) > 0 && index($3, d) > 0 { print $4 }' "$DSTP_PLOG" | sort | tr '\n' ' ')
  s_eq "$puts" "- 201 " "answers to the layer's uploads (the abandoned one, then the whole blob)"
  sdetail "rc=$RC; reset after 1 MB, the resumed GET answered from byte $((at - 1000)) instead of $at: refused, blob copied again, 1 finished upload; $VERIFIED/1 identical"
}

s12() { # a reset in the middle of a download into a local OCI layout: resumed, the stored blob verifies
  SCEN=$1
  local dir=$IM_WORK/layout-s$1 file got
  set_rules "$SRCP_RULES" "GET /v2/ns/a/blobs/$LAYER_A0 reset-response-after=1000000"
  printf '{"%s/%s": "oci:%s:1"}\n' "$SRCP_ADDR" "${REF[a]}" "$dir" >"$IM_WORK/images-$1.json"
  migrate "$1" -w 2 -r 0
  s_eq "$RC" 0 "exit status"
  grep -q "OK $SRCP_ADDR/${REF[a]} -> " "$OUT" || serr "no OK line"
  s_eq "$(requests "$SRCP_PLOG" GET "$LAYER_A0")" 2 "GETs of the reset layer"
  s_eq "$(partial_gets "$LAYER_A0")" 1 "GETs of the reset layer answered 206"
  file=$dir/blobs/sha256/${LAYER_A0#sha256:}
  got=sha256:$(sha256sum "$file" 2>/dev/null | cut -d' ' -f1)
  s_eq "$got" "$LAYER_A0" "digest of the layer stored in the layout"
  s_eq "sha256:$(skopeo inspect --raw "oci:$dir:1" 2>/dev/null | sha256sum | cut -d' ' -f1)" "${DIGEST[a]}" "manifest digest in the layout"
  [ -z "$(find "$dir/blobs" -name '*.tmp-*')" ] || serr "temporary files left in the layout"
  local at
  at=$(resumed_at "$LAYER_A0")
  [[ "$at" =~ ^[1-9][0-9]*$ ]] || serr "no single 'resuming the download at byte N' line for the layer (got '$at')"
  sdetail "rc=$RC; 3 MB layer into oci:DIR reset after 1 MB: resumed at byte $at (206), blob and manifest digests match"
}

# The token registry for scenario 8, behind its own proxy.
if wanted 8 || wanted 8b; then
  start_registry tsrc token --ttl 2
  SEED_CREDS=alice:alicepass seed "$L" a "$TSRC_ADDR/ns/a:1"
  SEED_CREDS=alice:alicepass seed "$L" c "$TSRC_ADDR/ns/c:1"
  start_proxy tsrcp "$TSRC_ADDR"
  cat >"$IM_WORK/auth-token.json" <<JSON
{"$TSRCP_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
 "$DSTP_ADDR": {"insecure": true}}
JSON
fi

run_scenario 1 "reset mid blob download" SURVIVED s1
run_scenario 2 "reset mid blob upload" SURVIVED s2
run_scenario 3 "burst of 500/502/503" SURVIVED s3
run_scenario 4 "429 Retry-After: 1" SURVIVED s4
run_scenario 5 "truncated blob body" SURVIVED s5
run_scenario 5b "body cut after 100 bytes" SURVIVED s5b
run_scenario 6 "3 s stall (< timeout)" SURVIVED s6
run_scenario 6b "5 s stall, timeout 2 s" SURVIVED s6b
run_scenario 7a "corrupted byte, once" SURVIVED s7a
run_scenario 7b "corrupted byte, always" FAILED-AS-EXPECTED s7b
run_scenario 7c "corrupted index, always" FAILED-AS-EXPECTED s7c
run_scenario 8 "tokens expiring mid-run" SURVIVED s8
run_scenario 8b "token expired, then resumed" SURVIVED s8b
run_scenario 9 "registry killed+restarted" SURVIVED s9
run_scenario 10 "permanent 500 on manifest" FAILED-AS-EXPECTED s10
run_scenario 10b "permanent reset, 1 platform" FAILED-AS-EXPECTED s10b
run_scenario 11 "reset every 700 kB, 3 times" SURVIVED s11
run_scenario 11b "resumed, Range ignored" SURVIVED s11b
run_scenario 11c "resumed, 206 from the wrong byte" SURVIVED s11c
run_scenario 12 "reset mid download to oci:DIR" SURVIVED s12

echo
{
  echo "scenario|result|detail"
  for r in "${ROWS[@]}"; do
    IFS='|' read -r id title result detail <<<"$r"
    echo "$id $title|$result|$detail"
  done
} | column -t -s '|' -o ' | '
echo
echo "test_faults: total $(since "$T0")s"
[ "$BAD" == 0 ] || fail "some scenarios misbehaved (details above)"
echo "test_faults: all scenarios behaved"

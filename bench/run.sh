#!/usr/bin/env bash
# bench/run.sh - image-migrator against `skopeo sync`, same machine, same registries, same run.
#
# Usage: bench/run.sh [--runs N] [--quick] [--workers N] [--only LIST] [--tls] [--rtt MS [--bandwidth MBIT]]
#                     [--noop-repeat N] [--tags-full] [--out FILE] [--keep]
#
#   --runs N      measured runs per workload and tool (default 3); the table shows medians
#   --noop-repeat N  no-op runs after each many-small copy (default 3): a 0.15 s measurement on a
#                 shared machine needs more samples than the copies
#   --quick       1 run and small sizes: a smoke check of the script, not a measurement
#   --workers N   image-migrator -w (default 7, its own default)
#   --only LIST   comma separated subset of: many-small (includes no-op), big, memory, tags
#   --tags-full   the tags workload at full size: 2,000 tags in 400 repositories (default 200 in 40)
#   --tls         registries over HTTPS (a CA of the run), certificates verified by both tools
#   --rtt MS      a WAN: both tools reach both registries through bench/relay.py, which adds MS
#                 milliseconds of round trip (RTT/2 each way per chunk, one RTT per new connection)
#   --bandwidth MBIT  with --rtt: each relay caps each direction at MBIT Mbit/s
#   --out FILE    also write the raw measurements (TSV, one line per run) to FILE
#   --keep        keep the work directory (registries' data, outputs) for inspection
#
# Environment: IM_BIN (default <repo>/build-release/image-migrator), BENCH_SKOPEO (default skopeo),
# BENCH_TMPDIR (default $TMPDIR/image-migrator-bench, or /tmp/image-migrator-bench): where the work
# directory goes (registries' data; ~2 GB at the default sizes). Removed at exit unless --keep.
#
# One source registry holds every workload (seeded once, with skopeo copy from generated OCI
# layouts). For every run and every tool a fresh destination registry (Debian docker-registry on
# loopback, plain HTTP) is started; the tool copies into it, the copy is verified (every tag's
# manifest digest equal at both ends, exact manifest bytes for a sample); for many-small, after a
# `sync`, the same command runs again (--noop-repeat times) against the now full destination (the
# no-op); then the destination is stopped and deleted.
# The two tools alternate who goes first from run to run. Prints a markdown table of medians and
# PASS/MISS per target, and exits 0 whether targets are met or not; 1 if something broke (a tool
# failed, a copy was wrong, a registry did not start).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)

# The comment block at the top: on stderr with exit 2 after a mistake, on stdout with exit 0 for --help.
header() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
usage() { header >&2; exit 2; }

RUNS=3 NOOP_REPEAT=3 QUICK=0 WORKERS=7 ONLY=many-small,big,memory,tags OUT='' KEEP=0 RUNS_GIVEN=0 TLS=0 RTT=0 BANDWIDTH=0
TAGS_FULL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; RUNS_GIVEN=1; shift 2 ;;
    --runs=*) RUNS=${1#*=}; RUNS_GIVEN=1; shift ;;
    --noop-repeat) [ $# -ge 2 ] || usage; NOOP_REPEAT=$2; shift 2 ;;
    --noop-repeat=*) NOOP_REPEAT=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --workers) [ $# -ge 2 ] || usage; WORKERS=$2; shift 2 ;;
    --workers=*) WORKERS=${1#*=}; shift ;;
    --only) [ $# -ge 2 ] || usage; ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#*=}; shift ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    --tls) TLS=1; shift ;;
    --tags-full) TAGS_FULL=1; shift ;;
    --rtt) [ $# -ge 2 ] || usage; RTT=$2; shift 2 ;;
    --rtt=*) RTT=${1#*=}; shift ;;
    --bandwidth) [ $# -ge 2 ] || usage; BANDWIDTH=$2; shift 2 ;;
    --bandwidth=*) BANDWIDTH=${1#*=}; shift ;;
    -h | --help) header; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ "$QUICK" == 1 ] && [ "$RUNS_GIVEN" == 0 ] && RUNS=1
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: --runs must be a positive integer" >&2; exit 2; }
[[ "$NOOP_REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: --noop-repeat must be a positive integer" >&2; exit 2; }
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: --workers must be a positive integer" >&2; exit 2; }
[[ "$RTT" =~ ^[0-9]+$ ]] || { echo "bench/run.sh: --rtt must be a whole number of milliseconds" >&2; exit 2; }
[[ "$BANDWIDTH" =~ ^[0-9]+$ ]] || { echo "bench/run.sh: --bandwidth must be a whole number of Mbit/s" >&2; exit 2; }
[ "$BANDWIDTH" == 0 ] || [ "$RTT" != 0 ] || { echo "bench/run.sh: --bandwidth needs a relay: give --rtt a value above 0" >&2; exit 2; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }
for w in ${ONLY//,/ }; do
  case "$w" in many-small | big | memory | tags) ;; *) echo "bench/run.sh: unknown workload '$w'" >&2; exit 2 ;; esac
done

# ------------------------------------------------------------------ sizes
MIB=1048576
if [ "$QUICK" == 1 ]; then
  MS_REPOS=3 MS_TAGS=4
  BIG_IMAGES=3 BIG_LAYERS=2 BIG_SIZE=$((4 * MIB))
  MEM_SMALL=$((8 * MIB)) MEM_LARGE=$((64 * MIB))
else
  MS_REPOS=12 MS_TAGS=10
  BIG_IMAGES=3 BIG_LAYERS=2 BIG_SIZE=$((40 * MIB))
  MEM_SMALL=$((64 * MIB)) MEM_LARGE=$((512 * MIB))
fi
MS_LAYERS=3 MS_LAYER_SIZE=$((150 * 1024)) # + the shared 1 MiB base (make-oci-layout's default size)
TAGS_REPOS=40 TAGS_PER=5 # tags: one 2 KB layer each
[ "$TAGS_FULL" == 1 ] && TAGS_REPOS=400
[ "$QUICK" == 1 ] && [ "$TAGS_FULL" == 0 ] && TAGS_REPOS=4
MEM_SMALL_LABEL="$((MEM_SMALL / MIB)) MiB" MEM_LARGE_LABEL="$((MEM_LARGE / MIB)) MiB"
BENCH_WORKLOADS=(
  "many-small|many-small|1"
  "no-op|no-op|0"
  "no-op-cold|no-op, no tag digests|0"
  "big|big|1"
  "mem-small|memory $((MEM_SMALL / MIB)) MiB|1"
  "mem-large|memory $((MEM_LARGE / MIB)) MiB|1"
  "tags|$((TAGS_REPOS * TAGS_PER)) tags|0"
)

# ------------------------------------------------------------------ tools
IM_BIN=${IM_BIN:-$REPO_ROOT/build-release/image-migrator}
SKOPEO=${BENCH_SKOPEO:-skopeo}
[ -x "$IM_BIN" ] || {
  echo "bench/run.sh: $IM_BIN is missing; build it:" >&2
  echo "  cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release && cmake --build build-release -j2 --target image-migrator" >&2
  exit 1
}
command -v "$SKOPEO" >/dev/null || { echo "bench/run.sh: skopeo is missing" >&2; exit 1; }

# shellcheck source=../tests/integration/lib.sh
source "$REPO_ROOT/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"

# Work under a directory of our own: other tools on a shared machine may sweep /tmp/im-test.*.
TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}/image-migrator-bench}
mkdir -p "$TMPDIR"
export TMPDIR
BENCH_T0=$EPOCHREALTIME
BENCH_LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$KEEP" == 1 ] && export IM_KEEP=1
IM_BUILD_DIR=${IM_BUILD_DIR:-$REPO_ROOT/build-release}
im_setup
im_on_exit _bench_kill_current
# Measure a snapshot: a rebuild while the benchmark runs must not mix binaries.
cp "$IM_BIN" "$IM_WORK/image-migrator"
IM_BIN_ORIG=$IM_BIN
IM_BIN=$IM_WORK/image-migrator
export IM_SKOPEO_TIMEOUT=${IM_SKOPEO_TIMEOUT:-1800}
BENCH_RESULTS=$IM_WORK/results.tsv
: >"$BENCH_RESULTS"
W=$IM_WORK
SKOPEO_BASE=("$SKOPEO" --policy "$W/policy.json" --tmpdir "$W/.tmp")
bench_build_measure "$W"

IM_GIT=$(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo unknown)
blog "image-migrator: $IM_BIN_ORIG ($("$IM_BIN" --version 2>&1 | head -n 1), tree $IM_GIT), -w $WORKERS"
blog "skopeo: $("$SKOPEO" --version), docker-registry: $("$DOCKER_REGISTRY_BIN" --version 2>&1 | awk '{ print $NF }')"
blog "runs: $RUNS, quick: $QUICK, workloads: $ONLY, cores: $(nproc), work dir: $W"

REG_MODE=plain
[ "$TLS" == 1 ] && REG_MODE=tls
export BENCH_SCHEME=http BENCH_CA=
start_registry src "$REG_MODE"
if [ "$TLS" == 1 ]; then
  BENCH_SCHEME=https BENCH_CA=$SRC_CA
fi
blog "source registry at $BENCH_SCHEME://$SRC_ADDR"

via() { bench_via "$@"; }
if [ "$RTT" != 0 ]; then
  blog "WAN profile: $RTT ms round trip$([ "$BANDWIDTH" != 0 ] && echo ", $BANDWIDTH Mbit/s each way") through bench/relay.py"
fi
SRC_VIA=$(via "$SRC_ADDR")

# ------------------------------------------------------------------ workload generation

# distinct_bytes DIR...: total size of the distinct blobs of these OCI layouts.
distinct_bytes() {
  local d
  for d in "$@"; do find "$d/blobs/sha256" -type f -printf '%f %s\n'; done | sort -u | awk '{ s += $2 } END { print s + 0 }'
}

# seed_list FILE: lines "LAYOUT TAG SRC_REF", pushed with skopeo copy, 4 at a time.
seed_list() {
  local rc=0
  # shellcheck disable=SC2016 # expanded by the inner bash
  W=$W SKOPEO=$SKOPEO xargs -P 4 -L 1 bash -c '
    "$SKOPEO" --policy "$W/policy.json" --tmpdir "$W/.tmp" copy --quiet --dest-tls-verify=false \
      --preserve-digests "oci:$1:$2" "docker://$3" || { echo "seed of oci:$1:$2 failed" >&2; exit 255; }' _ <"$1" || rc=$?
  [ "$rc" == 0 ] || bench_die "seeding from $1 failed"
}

# make_layouts JOBFILE: lines "LAYOUT TAG ARGS...", run by make-oci-layout.sh; the
# lines of one LAYOUT run in order (make-oci-layout.sh rewrites index.json), the
# layouts in parallel (one per core).
make_layouts() {
  local rc=0
  # shellcheck disable=SC2016 # expanded by the inner bash
  awk '{ print $1 }' "$1" | sort -u | xargs -P "$(nproc)" -I{} bash -c '
    set -e
    while read -r dir tag args; do
      [ "$dir" == "$1" ] || continue
      # shellcheck disable=SC2086
      bash "$OCI_LAYOUT_SH" "$dir" "$tag" $args >/dev/null
    done <"$0"' "$1" {} || rc=$?
  [ "$rc" == 0 ] || bench_die "generating layouts from $1 failed"
}

gen_t0=$EPOCHREALTIME
MS_LIST=$W/many-small.list BIG_LIST=$W/big.list
: >"$W/gen.jobs"
: >"$W/seed.list"
if want many-small; then
  # The shared base: a 1 MiB layer (make-oci-layout.sh's default size when --layer-size is not given).
  make_layout "$W/base-layout" base --layers 1 --shared-base "$W/ms-base.tar.gz" >/dev/null
  rm -rf "$W/base-layout"
  : >"$MS_LIST"
  for ((r = 1; r <= MS_REPOS; r++)); do
    repo=$(printf 'repo%02d' "$r")
    for ((t = 1; t <= MS_TAGS; t++)); do
      tag=$(printf 'v%02d' "$t")
      echo "$W/ms/$repo $tag --layers $((MS_LAYERS + 1)) --layer-size $MS_LAYER_SIZE --shared-base $W/ms-base.tar.gz --seed $repo-$tag" >>"$W/gen.jobs"
      echo "$W/ms/$repo $tag $SRC_ADDR/ns/$repo:$tag" >>"$W/seed.list"
      echo "ns/$repo $tag" >>"$MS_LIST"
    done
  done
fi
if want big; then
  : >"$BIG_LIST"
  for ((i = 1; i <= BIG_IMAGES; i++)); do
    echo "$W/big/v$i v$i --layers $BIG_LAYERS --layer-size $BIG_SIZE --seed big-v$i" >>"$W/gen.jobs"
    echo "$W/big/v$i v$i $SRC_ADDR/ns/big:v$i" >>"$W/seed.list"
    echo "ns/big v$i" >>"$BIG_LIST"
  done
fi
if want memory; then
  for m in small large; do
    size=$MEM_SMALL
    [ "$m" == large ] && size=$MEM_LARGE
    echo "$W/mem/$m v1 --layers 1 --layer-size $size --seed mem-$m" >>"$W/gen.jobs"
    echo "$W/mem/$m v1 $SRC_ADDR/ns/mem-$m:v1" >>"$W/seed.list"
    echo "ns/mem-$m v1" >"$W/mem-$m.list"
  done
fi
if want tags; then
  TAGS_LIST=$W/tags.list
  : >"$TAGS_LIST"
  for ((r = 1; r <= TAGS_REPOS; r++)); do
    repo=$(printf 'tr%03d' "$r")
    for ((t = 1; t <= TAGS_PER; t++)); do
      echo "$W/tags/$repo t$t --layers 1 --layer-size 2048 --seed $repo-$t" >>"$W/gen.jobs"
      echo "$W/tags/$repo t$t $SRC_ADDR/ns/$repo:t$t" >>"$W/seed.list"
      echo "ns/$repo t$t" >>"$TAGS_LIST"
    done
  done
fi
blog "generating $(wc -l <"$W/gen.jobs") images"
make_layouts "$W/gen.jobs"
gen_t1=$EPOCHREALTIME
blog "seeding the source registry"
seed_list "$W/seed.list"
gen_t2=$EPOCHREALTIME
blog "$(awk -v a="$gen_t0" -v b="$gen_t1" -v c="$gen_t2" 'BEGIN { printf "generation %.1f s, seeding %.1f s", b - a, c - b }')"

MS_BYTES=0 BIG_BYTES=0 MEM_SMALL_BYTES=0 MEM_LARGE_BYTES=0 TAGS_BYTES=0
want tags && TAGS_BYTES=$(distinct_bytes "$W"/tags/*)
want many-small && MS_BYTES=$(distinct_bytes "$W"/ms/*)
want big && BIG_BYTES=$(distinct_bytes "$W"/big/*)
if want memory; then
  MEM_SMALL_BYTES=$(distinct_bytes "$W/mem/small")
  MEM_LARGE_BYTES=$(distinct_bytes "$W/mem/large")
fi
# The layouts are no longer needed (the source registry has everything).
rm -rf "$W/ms" "$W/big" "$W/mem" "$W/tags"

# ------------------------------------------------------------------ tool invocations

# write_configs WL DST_ADDR REPO[:TAG]...: image-migrator's auth/images files and skopeo's YAML.
# A repository without a tag means every tag (both tools list the tags themselves).
write_configs() {
  local wl=$1 dst=$2 r repo tag first=1
  shift 2
  if [ "$TLS" == 1 ]; then
    printf '{"%s": {"ca": "%s"}, "%s": {"ca": "%s"}}\n' "$SRC_VIA" "$BENCH_CA" "$dst" "$BENCH_CA" >"$W/$wl.auth.json"
  else
    printf '{"%s": {"insecure": true}, "%s": {"insecure": true}}\n' "$SRC_VIA" "$dst" >"$W/$wl.auth.json"
  fi
  {
    echo "{"
    for r in "$@"; do
      [ "$first" == 1 ] || echo ","
      first=0
      printf '  "%s/ns/%s": "%s/ns/%s"' "$SRC_VIA" "$r" "$dst" "$r"
    done
    echo
    echo "}"
  } >"$W/$wl.images.json"
  {
    echo "$SRC_VIA:"
    if [ "$TLS" == 1 ]; then echo "  cert-dir: $SRC_CERTDIR"; else echo "  tls-verify: false"; fi
    echo "  images:"
    for r in "$@"; do
      repo=${r%%:*} tag=
      [ "$repo" != "$r" ] && tag=${r#*:}
      if [ -n "$tag" ]; then echo "    ns/$repo: [\"$tag\"]"; else echo "    ns/$repo: []"; fi
    done
  } >"$W/$wl.sync.yaml"
}

# run_tool TOOL WL DST_ADDR PREFIX [COLD]: one measured run (configs written by write_configs).
# image-migrator keeps the digests of the source tags it saw, and where it put blobs, for the next
# run into the same destination (PREFIX without its last part names the files; a destination's port
# may be another's of an earlier run); COLD=1: it neither reads nor writes them.
run_tool() {
  local tool=$1 wl=$2 dst=$3 pfx=$4 cold=${5:-0} rc=0 cache blobs
  case "$tool" in
    image-migrator)
      cache=${pfx%.*}.tag-digests blobs=${pfx%.*}.blob-locations
      [ "$cold" == 1 ] && cache= blobs=
      bench_measure "$pfx" "$IM_BIN" --auth "$W/$wl.auth.json" --images "$W/$wl.images.json" \
        -w "$WORKERS" -r 0 --log "" --digest-cache "$cache" --blob-cache "$blobs" || rc=$?
      ;;
    skopeo)
      # skopeo 1.9 sync copies the images one after another (no knob); inside an image, up to 6
      # layers at a time (containers/image's default). --preserve-digests: fail rather than change
      # a digest, the promise image-migrator makes.
      local dest_tls=(--dest-tls-verify=false)
      [ "$TLS" == 1 ] && dest_tls=(--dest-cert-dir "$SRC_CERTDIR") # one CA for all registries of the run
      bench_measure "$pfx" "${SKOPEO_BASE[@]}" sync --src yaml --dest docker "${dest_tls[@]}" \
        --preserve-digests "$W/$wl.sync.yaml" "$dst/ns" || rc=$?
      ;;
  esac
  [ "$rc" == 0 ] || bench_fail_output "$pfx" "$tool failed on $wl (exit $rc)"
}

# bench_pair RUN WL BYTES LIST REPO[:TAG]...: both tools, each into its own fresh destination;
# for many-small also the no-op rerun.
bench_pair() {
  local run=$1 wl=$2 bytes=$3 list=$4 tools=(image-migrator skopeo) tool name dst real pfx sample dpid r0 r1 cold sfx
  shift 4
  [ $((run % 2)) == 0 ] && tools=(skopeo image-migrator)
  sample=$(($(wc -l <"$list") / 6 + 1))
  for tool in "${tools[@]}"; do
    name=d${run}-${wl}-${tool%%-*}
    start_registry "$name" "$REG_MODE"
    real=$(cat "$W/$name/addr")
    dst=$(via "$real")
    write_configs "$wl" "$dst" "$@"
    pfx=$W/out.$name
    dpid=$(cat "$W/$name/pid")
    r0=$(bench_reg_cpu "$SRC_PID" "$dpid")
    run_tool "$tool" "$wl" "$dst" "$pfx.copy"
    r1=$(bench_reg_cpu "$SRC_PID" "$dpid")
    bench_record "$wl" "$tool" "$run" "$bytes" "$(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.2f", b - a }')"
    bench_verify_tags "$SRC_ADDR" "$real" "$list" "$sample" || bench_die "$tool produced a wrong copy ($wl, run $run)"
    if [ "$wl" == many-small ]; then
      # The copy's writes are flushed first: the no-op should measure the re-sync, not the kernel
      # writing back the registry's new files meanwhile (a real re-sync comes long after the copy).
      sync
      # no-op: as a re-sync from the same place runs (image-migrator with the tag digests the copy
      # saw); no-op-cold: image-migrator without them. skopeo keeps nothing between runs: its
      # no-op-cold runs are more of the same, measured alike and interleaved.
      for ((k = 1; k <= NOOP_REPEAT; k++)); do
        for cold in 0 1; do
          sfx=
          [ "$cold" == 1 ] && sfx=-cold
          r0=$(bench_reg_cpu "$SRC_PID" "$dpid")
          run_tool "$tool" "$wl" "$dst" "$pfx.noop$k$sfx" "$cold"
          r1=$(bench_reg_cpu "$SRC_PID" "$dpid")
          bench_record "no-op$sfx" "$tool" "$run.$k" "$bytes" "$(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.2f", b - a }')"
        done
      done
    fi
    stop_registry "$name"
    rm -rf "${W:?}/$name/data"
  done
}

# Warm the page cache for both binaries (not measured).
"$IM_BIN" --version >/dev/null 2>&1 || true
"$SKOPEO" --version >/dev/null

ms_repos=()
for ((r = 1; r <= MS_REPOS; r++)); do ms_repos+=("$(printf 'repo%02d' "$r")"); done
tag_repos=()
for ((r = 1; r <= TAGS_REPOS; r++)); do tag_repos+=("$(printf 'tr%03d' "$r")"); done

for ((run = 1; run <= RUNS; run++)); do
  blog "---- run $run/$RUNS"
  want many-small && bench_pair "$run" many-small "$MS_BYTES" "$MS_LIST" "${ms_repos[@]}"
  want big && bench_pair "$run" big "$BIG_BYTES" "$BIG_LIST" big
  if want memory; then
    bench_pair "$run" mem-small "$MEM_SMALL_BYTES" "$W/mem-small.list" mem-small:v1
    bench_pair "$run" mem-large "$MEM_LARGE_BYTES" "$W/mem-large.list" mem-large:v1
  fi
  want tags && bench_pair "$run" tags "$TAGS_BYTES" "$TAGS_LIST" "${tag_repos[@]}"
done

[ -n "$OUT" ] && cp "$BENCH_RESULTS" "$OUT"

# ------------------------------------------------------------------ report
{
  echo
  echo "## image-migrator vs skopeo sync ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, runs: $RUNS$([ "$QUICK" == 1 ] && echo ', QUICK sizes')$([ "$TLS" == 1 ] && echo ', registries over HTTPS')$([ "$RTT" != 0 ] && echo ", $RTT ms RTT")$([ "$BANDWIDTH" != 0 ] && echo ", $BANDWIDTH Mbit/s"))"
  echo
  echo "image-migrator -w $WORKERS ($("$IM_BIN" --version 2>&1 | head -n 1), $IM_BIN_ORIG, source tree $IM_GIT);"
  echo "$("$SKOPEO" --version) sync --src yaml (one process, images one by one); $("$DOCKER_REGISTRY_BIN" --version 2>&1 | awk '{ print $NF }') docker-registry, plain HTTP on loopback."
  desc=()
  want many-small && desc+=("$(printf 'many-small = %d images (%d repos x %d tags, %d layers of %d KiB + a shared 1 MiB base, %.1f MB distinct), no-op = the same sync again' \
    $((MS_REPOS * MS_TAGS)) "$MS_REPOS" "$MS_TAGS" "$MS_LAYERS" $((MS_LAYER_SIZE / 1024)) "$(awk -v b="$MS_BYTES" 'BEGIN { print b / 1e6 }')")")
  want big && desc+=("$(printf 'big = %d images x %d layers x %d MiB (%.1f MB)' "$BIG_IMAGES" "$BIG_LAYERS" $((BIG_SIZE / MIB)) \
    "$(awk -v b="$BIG_BYTES" 'BEGIN { print b / 1e6 }')")")
  want memory && desc+=("memory = one image, one layer of $MEM_SMALL_LABEL / $MEM_LARGE_LABEL")
  want tags && desc+=("tags = $((TAGS_REPOS * TAGS_PER)) tags in $TAGS_REPOS repositories, one 2 KB layer each")
  printf 'Workloads: %s' "${desc[0]}"
  [ ${#desc[@]} -le 1 ] || printf '; %s' "${desc[@]:1}"
  printf '.\n'
  printf 'Load average before / after: %s / %s.\n' "$BENCH_LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)"
  bench_report
  echo
  printf 'benchmark wall time: %s s (generation + seeding %s s)\n' \
    "$(awk -v a="$BENCH_T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')" \
    "$(awk -v a="$gen_t0" -v b="$gen_t2" 'BEGIN { printf "%.0f", b - a }')"
}
exit 0

#!/usr/bin/env bash
# bench/mount.sh - new repositories whose base layer an earlier run put elsewhere in the destination
# registry: bytes moved and time with the blob-location memory (--blob-cache) and without it.
#
# Usage: bench/mount.sh [--runs N] [--repos N] [--base-mib N] [--rtt MS [--bandwidth MBIT]] [--keep]
#
#   --runs N        measured runs per case (default 3); the table shows medians
#   --repos N       new repositories in the measured run (default 10)
#   --base-mib N    the shared base layer's size (default 50)
#   --rtt MS        reach both registries through bench/relay.py with this round trip (default 0)
#   --bandwidth MBIT  with --rtt: each relay caps each direction at MBIT Mbit/s
#   --keep          keep the work directory
#
# Environment: IM_BIN (default <repo>/build-release/image-migrator), BENCH_TMPDIR as for bench/run.sh.
#
# One source registry holds ns/base:1 (the base layer alone) and ns/appNN:1 (the base + 100 KB of
# its own each). For each run and case a fresh destination registry is started; an earlier run
# copies ns/base:1 to it (its own process, as a migration done last week); then the measured run
# copies the N applications to N new repositories. "before": both runs with --blob-cache "" (as
# every run did before the memory: only blobs of the same run are mounted, so the base crosses once
# more). "after": both runs share one --blob-cache file. Every copy is verified (digests equal at
# both ends). The cases alternate who goes first. Exits 1 if something broke.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
# The comment block at the top: on stderr with exit 2 after a mistake, on stdout with exit 0 for --help.
header() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
usage() { header >&2; exit 2; }

RUNS=3 REPOS=10 BASE_MIB=50 RTT=0 BANDWIDTH=0 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    --repos) [ $# -ge 2 ] || usage; REPOS=$2; shift 2 ;;
    --base-mib) [ $# -ge 2 ] || usage; BASE_MIB=$2; shift 2 ;;
    --rtt) [ $# -ge 2 ] || usage; RTT=$2; shift 2 ;;
    --bandwidth) [ $# -ge 2 ] || usage; BANDWIDTH=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) header; exit 0 ;;
    *) echo "bench/mount.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
for v in RUNS REPOS BASE_MIB; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "bench/mount.sh: ${v,,} must be a positive integer" >&2; exit 2; }
done
[[ "$RTT" =~ ^[0-9]+$ && "$BANDWIDTH" =~ ^[0-9]+$ ]] || { echo "bench/mount.sh: --rtt and --bandwidth are whole numbers" >&2; exit 2; }
[ "$BANDWIDTH" == 0 ] || [ "$RTT" != 0 ] || { echo "bench/mount.sh: --bandwidth needs a relay: give --rtt a value above 0" >&2; exit 2; }

# shellcheck source=../tests/integration/lib.sh
source "$REPO_ROOT/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
bench_setup
via() { bench_via "$@"; }

start_registry src plain
SRC=$(via "$SRC_ADDR")
blog "generating a $BASE_MIB MiB base and $REPOS applications on it"
make_layout "$W/l" base --layers 1 --layer-size $((BASE_MIB * 1048576)) --shared-base "$W/base.tar.gz" --seed base >/dev/null
seed "$W/l" base "$SRC_ADDR/ns/base:1"
: >"$W/apps.list"
for ((i = 1; i <= REPOS; i++)); do
  app=$(printf 'app%02d' "$i")
  make_layout "$W/l" "$app" --layers 2 --layer-size 100000 --shared-base "$W/base.tar.gz" --seed "$app" >/dev/null
  seed "$W/l" "$app" "$SRC_ADDR/ns/$app:1"
  echo "ns/$app 1" >>"$W/apps.list"
done
rm -rf "$W/l"

# one_case RUN CASE: a fresh destination, the earlier run, then the measured one.
one_case() {
  local run=$1 case=$2 name real dst mem='' i app bytes mounted
  name=d$run-$case
  start_registry "$name" plain
  real=$(cat "$W/$name/addr")
  dst=$(via "$real")
  [ "$case" == after ] && mem=$W/$name.blob-locations
  printf '{"%s": {"insecure": true}, "%s": {"insecure": true}}\n' "$SRC" "$dst" >"$W/auth.json"
  printf '{"%s/ns/base:1": "%s/team/base:1"}\n' "$SRC" "$dst" >"$W/earlier.json"
  bench_measure "$W/$name.earlier" "$IM_BIN" --auth "$W/auth.json" --images "$W/earlier.json" -r 0 --log "" \
    --digest-cache "" --blob-cache "$mem" || bench_fail_output "$W/$name.earlier" "the earlier run failed ($case, run $run)"
  {
    echo "{"
    for ((i = 1; i <= REPOS; i++)); do
      app=$(printf 'app%02d' "$i")
      printf '  "%s/ns/%s:1": "%s/ns/%s:1"%s\n' "$SRC" "$app" "$dst" "$app" "$([ "$i" -lt "$REPOS" ] && echo ,)"
    done
    echo "}"
  } >"$W/apps.json"
  bench_measure "$W/$name.apps" "$IM_BIN" --auth "$W/auth.json" --images "$W/apps.json" -r 0 --log "" \
    --digest-cache "" --blob-cache "$mem" --report "$W/$name.report.json" ||
    bench_fail_output "$W/$name.apps" "the measured run failed ($case, run $run)"
  bytes=$(jq '.totals.bytes' "$W/$name.report.json")
  mounted=$(jq '[.images[].blobs.mounted] | add' "$W/$name.report.json")
  bench_record "$case" image-migrator "$run" "$bytes" "$mounted"
  bench_verify_tags "$SRC_ADDR" "$real" "$W/apps.list" 4 || bench_die "a wrong copy ($case, run $run)"
  stop_registry "$name"
  rm -rf "${W:?}/$name/data"
}

for ((run = 1; run <= RUNS; run++)); do
  if [ $((run % 2)) == 1 ]; then one_case "$run" before; one_case "$run" after
  else one_case "$run" after; one_case "$run" before; fi
done

med() { awk -F'\t' -v c="$1" -v k="$2" '$1 == c { print $k }' "$BENCH_RESULTS" | bench_median; }
range() { awk -F'\t' -v c="$1" '$1 == c { if (n == 0 || $4 < lo) lo = $4; if (n == 0 || $4 > hi) hi = $4; n++ } END { printf "%.2f..%.2f", lo, hi }' "$BENCH_RESULTS"; }
echo
echo "## New repositories on a base an earlier run copied ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, runs: $RUNS$([ "$RTT" != 0 ] && echo ", $RTT ms RTT")$([ "$BANDWIDTH" != 0 ] && echo ", $BANDWIDTH Mbit/s"))"
echo
echo "$REPOS new repositories, each a $BASE_MIB MiB base + 100 KB of its own; the base was copied to team/base by an earlier run."
echo
echo "| case | wall s (median, range) | bytes moved | blobs mounted | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for c in before after; do
  printf '| %s | %.2f (%s) | %s | %s | %.1f |\n' "$c" "$(med "$c" 4)" "$(range "$c")" "$(med "$c" 8)" "$(med "$c" 9)" \
    "$(awk -v k="$(med "$c" 7)" 'BEGIN { print k / 1024 }')"
done
awk -v b="$(med before 4)" -v a="$(med after 4)" 'BEGIN { if (a > 0) printf "\nbefore / after: %.2fx\n", b / a }'
exit 0

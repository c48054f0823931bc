#!/usr/bin/env bash
# bench/adaptive.sh - adaptive concurrency against a registry that sheds load, and one that does not.
#
# Usage: bench/adaptive.sh [--runs N] [--images N] [--busy-above N] [--workers N] [--keep]
#
#   --runs N        runs per case (default 3); the table shows medians
#   --images N      small images to copy (default 40: 3 layers of 100 KB + a shared 1 MiB base)
#   --busy-above N  the throttled destination answers 429 above N requests in flight (default 4)
#   --workers N     image-migrator -w (default 16)
#   --keep          keep the work directory
#
# Environment: IM_BIN (default <repo>/build-release/image-migrator), FAULT_PROXY_BIN (default
# <build>/tests/faultproxy/fault_proxy), BENCH_TMPDIR as for bench/run.sh.
#
# The destination registry sits behind tests/faultproxy/fault_proxy, with --busy-above N
# ("throttled") or without ("open"). Each run copies the images into new repositories with
# maxConcurrency 16, once fixed ("adaptive": false) and once adaptive (the default), alternating
# who goes first; retries (-r 6) let the fixed runs finish. Counted: wall time, the 429s the proxy
# sent, failed images (--report). Every copy that reports success is verified (digests equal). Exits 1 if something broke.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
# The comment block at the top: on stderr with exit 2 after a mistake, on stdout with exit 0 for --help.
header() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
usage() { header >&2; exit 2; }

RUNS=3 IMAGES=40 BUSY=4 WORKERS=16 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    --images) [ $# -ge 2 ] || usage; IMAGES=$2; shift 2 ;;
    --busy-above) [ $# -ge 2 ] || usage; BUSY=$2; shift 2 ;;
    --workers) [ $# -ge 2 ] || usage; WORKERS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) header; exit 0 ;;
    *) echo "bench/adaptive.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
for v in RUNS IMAGES BUSY WORKERS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "bench/adaptive.sh: ${v,,} must be a positive integer" >&2; exit 2; }
done
# shellcheck source=../tests/integration/lib.sh
source "$REPO_ROOT/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
bench_setup

start_registry src plain
start_registry dst plain
start_proxy throttled "$DST_ADDR" --busy-above "$BUSY"
start_proxy open "$DST_ADDR"
blog "generating $IMAGES images"
make_layout "$W/b" base --layers 1 --shared-base "$W/base.tar.gz" >/dev/null
rm -rf "$W/b"
: >"$W/tags"
for ((i = 1; i <= IMAGES; i++)); do
  make_layout "$W/l" "t$i" --layers 4 --layer-size 100000 --shared-base "$W/base.tar.gz" --seed "i$i" >/dev/null
  seed "$W/l" "t$i" "$SRC_ADDR/ns/app:t$i"
  echo "t$i" >>"$W/tags"
done
rm -rf "$W/l"

# one RUN PROXY MODE: copies ns/app (every tag) through PROXY (throttled|open) into a new repository.
one() {
  local run=$1 proxy=$2 mode=$3 addr plog before after repo rc=0 failed fixed=''
  addr=$(cat "$W/proxy-$proxy/port")
  addr=127.0.0.1:$addr plog=$W/proxy-$proxy/log
  repo=r$run-$mode/app
  [ "$mode" == fixed ] && fixed=', "adaptive": false'
  printf '{"%s": {"insecure": true}, "%s": {"insecure": true, "maxConcurrency": 16%s}}\n' "$SRC_ADDR" "$addr" "$fixed" >"$W/auth.json"
  printf '{"%s/ns/app": "%s/%s"}\n' "$SRC_ADDR" "$addr" "$repo" >"$W/images.json"
  before=$(grep -c ' busy-above$' "$plog" || true)
  bench_measure "$W/out.$run-$proxy-$mode" "$IM_BIN" --auth "$W/auth.json" --images "$W/images.json" -w "$WORKERS" \
    -r 6 --log "" --digest-cache "" --blob-cache "" --report "$W/report.json" || rc=$?
  after=$(grep -c ' busy-above$' "$plog" || true)
  failed=$(jq .totals.failed "$W/report.json" 2>/dev/null || echo "?")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$proxy" "$mode" "$run" "$M_WALL" "$((after - before))" "$failed" >>"$BENCH_RESULTS"
  blog "$proxy $mode run $run: exit $rc, wall $M_WALL s, $((after - before)) x 429, $failed failed"
  if [ "$rc" == 0 ]; then
    while read -r t; do
      [ "$(raw_digest "$SRC_ADDR/ns/app:$t")" == "$(raw_digest "$DST_ADDR/$repo:$t")" ] || bench_die "$repo:$t differs"
    done <"$W/tags"
  fi
}

for ((run = 1; run <= RUNS; run++)); do
  for proxy in throttled open; do
    if [ $((run % 2)) == 1 ]; then one "$run" "$proxy" fixed; one "$run" "$proxy" adaptive
    else one "$run" "$proxy" adaptive; one "$run" "$proxy" fixed; fi
  done
done

med() { awk -F'\t' -v p="$1" -v m="$2" -v c="$3" '$1 == p && $2 == m { print $c }' "$BENCH_RESULTS" | bench_median; }
all() { awk -F'\t' -v p="$1" -v m="$2" -v c="$3" '$1 == p && $2 == m { printf "%s%s", n++ ? ", " : "", $c }' "$BENCH_RESULTS"; }
echo
echo "## Adaptive concurrency ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, runs: $RUNS)"
echo
echo "$IMAGES images (4 layers: a shared 1 MiB base + 3 x 100 KB), -w $WORKERS, maxConcurrency 16; throttled = 429 above $BUSY in flight."
echo
echo "| destination | mode | wall s (median; each run) | 429s (each run) | failed images |"
echo "|---|---|---:|---:|---:|"
for proxy in throttled open; do
  for mode in fixed adaptive; do
    printf '| %s | %s | %.2f (%s) | %s | %s |\n' "$proxy" "$mode" "$(med "$proxy" "$mode" 4)" "$(all "$proxy" "$mode" 4)" \
      "$(all "$proxy" "$mode" 5)" "$(all "$proxy" "$mode" 6)"
  done
done
exit 0

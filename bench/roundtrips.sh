#!/usr/bin/env bash
# bench/roundtrips.sh - the round trips on the critical path of one image copy and of its no-op,
# measured through bench/relay.py: each request of image-migrator -v, when it started and ended in
# round trips since the run's first request.
#
# Usage: bench/roundtrips.sh [--rtt MS] [--keep]
#
#   --rtt MS   the relay's round trip (default 50)
#
# Environment: IM_BIN (default <repo>/build-release/image-migrator), BENCH_TMPDIR as for bench/run.sh.
#
# One image (an OCI manifest, its config and 4 layers of 100 KB: 0.4 MB) is copied to an empty
# destination with no tag digests and no blob memory, then the same command runs again (the no-op,
# with the tag digests the copy saved). For each run: the requests in the order they started, each
# as "start..end RTT  src|dst METHOD PATH STATUS" (times in round trips since the first request
# started; a blob transfer shows as its GET from src and its PUT to dst), then the wall time in round
# trips (the process's start and exit included).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
# The comment block at the top: on stderr with exit 2 after a mistake, on stdout with exit 0 for --help.
header() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
usage() { header >&2; exit 2; }
RTT=50 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rtt) [ $# -ge 2 ] || usage; RTT=$2; shift 2 ;;
    --rtt=*) RTT=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) header; exit 0 ;;
    *) echo "bench/roundtrips.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ "$RTT" =~ ^[1-9][0-9]*$ ]] || { echo "bench/roundtrips.sh: --rtt must be a positive whole number" >&2; exit 2; }
# shellcheck source=../tests/integration/lib.sh
source "$REPO_ROOT/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
bench_setup

start_registry src plain
start_registry dst plain
S=$(bench_via "$SRC_ADDR") D=$(bench_via "$DST_ADDR")
make_layout "$W/l" app --layers 4 --layer-size 100000 --shared-base "$W/base.tar.gz" >/dev/null
seed "$W/l" app "$SRC_ADDR/ns/app:1"
printf '{"%s": {"insecure": true}, "%s": {"insecure": true}}\n' "$S" "$D" >"$W/auth.json"
printf '{"%s/ns/app:1": "%s/ns/app:1"}\n' "$S" "$D" >"$W/images.json"

# timeline NAME: runs the copy with -v; prints its requests in round trips since the first one started.
timeline() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$IM_BIN" --auth "$W/auth.json" --images "$W/images.json" -r 0 -v --log "$W/$1.log" \
    --digest-cache "$W/tag-digests" --blob-cache "" >"$W/$1.out" 2>&1 || bench_die "the $1 run failed: $(tail -n 3 "$W/$1.out")"
  t1=$EPOCHREALTIME
  echo "### $1 (start..end in RTT since the first request; src $S, dst $D)"
  # "2026-12-05 23:12:45.321 debug GET http://h/v2/... -> 200 (51 ms, ...)": end time and duration.
  awk -v rtt="$RTT" -v src="$S" -v dst="$D" -v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) * 1000 }')" '
    / debug [A-Z]+ [a-z]+:\/\/[^ ]+ -> / {
      split($2, hms, ":"); end = (hms[1] * 3600 + hms[2] * 60 + hms[3]) * 1000
      for (i = 1; i <= NF; i++) if ($i == "->") { status = $(i + 1); ms = substr($(i + 2), 2) }
      path = $5; host = path; sub(/^[a-z]+:\/\//, "", host); sub(/\/.*/, "", host)
      side = host == src ? "src" : host == dst ? "dst" : host
      sub(/^[a-z]+:\/\/[^\/]+/, "", path); sub(/\?.*/, "?...", path)
      n++; st[n] = end - ms; en[n] = end; line[n] = sprintf("%s %-6s %-70s %s", side, $4, substr(path, 1, 70), status)
      if (n == 1 || end - ms < first) first = end - ms
      if (end > last) last = end
    }
    END {
      # in the order they started
      for (i = 1; i <= n; i++) order[i] = i
      for (i = 2; i <= n; i++) for (j = i; j > 1 && st[order[j]] < st[order[j - 1]]; j--) { t = order[j]; order[j] = order[j - 1]; order[j - 1] = t }
      for (i = 1; i <= n; i++) { k = order[i]; printf "%5.1f..%5.1f  %s\n", (st[k] - first) / rtt, (en[k] - first) / rtt, line[k] }
      printf "%d requests; first request start to last answer: %.1f RTT; the whole process: %.1f RTT (%.0f ms)\n", n, (last - first) / rtt, wall / rtt, wall
    }' "$W/$1.log"
}
timeline copy
timeline no-op

#!/usr/bin/env bash
# bench/catalogue.sh - peak memory against the number of tags: a small and a large catalogue copied
# (and then synced again, the no-op) with one process each, and the growth per tag between them.
#
# Usage: bench/catalogue.sh [--tags N] [--small N] [--per-repo N] [--workers N] [--no-caches] [--keep]
#
#   --tags N       tags of the large catalogue (default 10000)
#   --small N      tags of the small one (default 1000)
#   --per-repo N   tags per repository (default 100)
#   --workers N    image-migrator's -w (default 7)
#   --no-caches    --digest-cache "" --blob-cache "" (what the run itself holds, without the caches)
#   --keep         keep the work directory
#
# Environment: IM_BIN (default <repo>/build-release/image-migrator), BENCH_TMPDIR as for bench/run.sh.
#
# The source registry's storage is written directly by bench/seed_storage.py (seeding 10,000 tags
# through the API would take minutes per run): per repository one shared 1 KiB layer and per tag its
# own config, so every tag is its own image. Each catalogue is one rule per repository ("every tag")
# copied into an empty destination registry, with --report (the report holds every image), then the
# same run again (nothing to copy). Both copies are verified tag by tag (digests at both ends).
# Targets (issue 22): peak RSS <= 64 MiB at 10,000 tags, growth <= 1 KB per tag. The default run
# takes about 5 minutes on 2 cores (the 10,000-tag copy is most of it). Prints the table and a
# PASS/MISS line per target; exits 0 whether targets are met or not, 1 if something broke.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
# The comment block at the top: on stderr with exit 2 after a mistake, on stdout with exit 0 for --help.
header() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
usage() { header >&2; exit 2; }

TAGS=10000 SMALL=1000 PER=100 WORKERS=7 KEEP=0 CACHES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tags) [ $# -ge 2 ] || usage; TAGS=$2; shift 2 ;;
    --small) [ $# -ge 2 ] || usage; SMALL=$2; shift 2 ;;
    --per-repo) [ $# -ge 2 ] || usage; PER=$2; shift 2 ;;
    --workers) [ $# -ge 2 ] || usage; WORKERS=$2; shift 2 ;;
    --no-caches) CACHES=(--digest-cache "" --blob-cache ""); shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) header; exit 0 ;;
    *) echo "bench/catalogue.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
for pair in TAGS:--tags SMALL:--small PER:--per-repo WORKERS:--workers; do
  v=${pair%%:*}
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "bench/catalogue.sh: ${pair#*:} must be a positive integer, not '${!v}'" >&2; exit 2; }
done
((TAGS % PER == 0 && SMALL % PER == 0)) ||
  { echo "bench/catalogue.sh: --tags ($TAGS) and --small ($SMALL) must be multiples of --per-repo ($PER)" >&2; exit 2; }
((SMALL < TAGS)) || { echo "bench/catalogue.sh: --small ($SMALL) must be below --tags ($TAGS)" >&2; exit 2; }

# shellcheck source=../tests/integration/lib.sh
source "$REPO_ROOT/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
bench_setup

# The source: both catalogues written into its storage before it starts.
blog "writing $SMALL + $TAGS tags into the source registry's storage"
mkdir -p "$W/src/data"
t0=$EPOCHREALTIME
python3 "$BENCH_DIR/seed_storage.py" "$W/src/data" small $((SMALL / PER)) "$PER" >"$W/small.digests"
python3 "$BENCH_DIR/seed_storage.py" "$W/src/data" large $((TAGS / PER)) "$PER" >"$W/large.digests"
blog "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "written in %.1f s", b - a }')"
start_registry src plain
start_registry dst plain
printf '{"%s": {"insecure": true}, "%s": {"insecure": true}}\n' "$SRC_ADDR" "$DST_ADDR" >"$W/auth.json"

# verify NAME: every tag of the catalogue has the source's digest at the destination (HEAD both
# sides), and every 500th the same manifest bytes (skopeo inspect --raw).
verify() {
  local name=$1
  awk '{ print $1, $2 }' "$W/$name.digests" >"$W/$name.tags"
  bench_verify_tags "$SRC_ADDR" "$DST_ADDR" "$W/$name.tags" 500 || bench_die "the $name catalogue was not copied whole"
}

# one NAME CASE: runs the catalogue's rules once, measured; prints "tags case wall rss_kib".
one() {
  local name=$1 case=$2 n
  n=$(wc -l <"$W/$name.digests")
  awk '{ print $1 }' "$W/$name.digests" | sort -u |
    jq -R -n --arg s "$SRC_ADDR" --arg d "$DST_ADDR" '[inputs] | map({key: "\($s)/\(.)", value: "\($d)/\(.)"}) | from_entries' \
      >"$W/$name.json"
  bench_measure "$W/$name-$case" "$IM_BIN" --auth "$W/auth.json" --images "$W/$name.json" -w "$WORKERS" -r 0 \
    --log "" --report "$W/$name-$case.report.json" "${CACHES[@]}" || bench_fail_output "$W/$name-$case" "the $name $case run failed"
  [ "$(jq '.totals.failed' "$W/$name-$case.report.json")" == 0 ] || bench_die "the $name $case run has failed images"
  [ "$(jq '.images | length' "$W/$name-$case.report.json")" == "$n" ] || bench_die "the $name $case report lacks images"
  blog "$name $case: $n tags, $M_WALL s, peak RSS $(awk -v k="$M_RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
  echo "$n $case $M_WALL $M_RSS_KB" >>"$BENCH_RESULTS"
}

for name in small large; do
  one "$name" copy
  verify "$name"
  one "$name" no-op
done

echo
echo "Catalogue memory ($("$IM_BIN" --version 2>&1 | head -n 1), -w $WORKERS, $PER tags per repository, caches $([ ${#CACHES[@]} == 0 ] && echo on || echo off), $(nproc) cores)"
printf '%-8s %-6s %9s %14s\n' tags run wall_s peak_rss_mib
awk '{ printf "%-8s %-6s %9.2f %14.1f\n", $1, $2, $3, $4 / 1024 }' "$BENCH_RESULTS"
[ "$TAGS" -ge 10000 ] || echo "(the targets are for 10,000 tags; this run has $TAGS: a smoke check, not the measurement)"
for case in copy no-op; do
  read -r small_kb large_kb < <(awk -v c="$case" -v s="$SMALL" -v l="$TAGS" \
    '$2 == c && $1 == s { a = $4 } $2 == c && $1 == l { b = $4 } END { print a, b }' "$BENCH_RESULTS")
  per_tag=$(awk -v a="$small_kb" -v b="$large_kb" -v s="$SMALL" -v l="$TAGS" 'BEGIN { printf "%.2f", (b - a) * 1024 / (l - s) / 1000 }')
  verdict_rss=PASS verdict_growth=PASS
  ((large_kb <= 64 * 1024)) || verdict_rss=MISS
  awk -v g="$per_tag" 'BEGIN { exit !(g <= 1.0) }' || verdict_growth=MISS
  echo "$verdict_rss: $case, peak RSS at $TAGS tags $(awk -v k="$large_kb" 'BEGIN { printf "%.1f", k / 1024 }') MiB (target <= 64 MiB)"
  echo "$verdict_growth: $case, growth $per_tag KB per tag between $SMALL and $TAGS tags (target <= 1 KB)"
done
exit 0

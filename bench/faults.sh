#!/usr/bin/env bash
# bench/faults.sh - one big layer whose download breaks part-way: how long image-migrator and
# `skopeo copy --retry-times` take to finish the copy, and how many bytes the source sends.
#
# Usage: bench/faults.sh [--size MIB] [--cut PERCENT] [--runs N] [--keep]
#
#   --size MIB     the layer's size (default 256)
#   --cut PERCENT  the connection is reset (RST) after this share of the layer (default 75)
#   --runs N       runs per tool and case (default 3); the table shows medians
#   --keep         keep the work directory
#
# Environment: IM_BIN (default <repo>/build-release/image-migrator), BENCH_SKOPEO (default
# skopeo), FAULT_PROXY_BIN (default <build>/tests/faultproxy/fault_proxy, built if missing),
# BENCH_TMPDIR as for bench/run.sh.
#
# The source registry sits behind tests/faultproxy/fault_proxy. For each run, tool and case
# ("clean": no fault, "reset": one reset at --cut) a fresh destination registry is started, the
# tool copies the image through the proxy, the destination's manifest digest is checked, and the
# source registry's access log gives the bytes it sent for the layer. The tools alternate who goes
# first. Exits 1 if a copy failed or came out wrong.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
# The comment block at the top: on stderr with exit 2 after a mistake, on stdout with exit 0 for --help.
header() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
usage() { header >&2; exit 2; }

SIZE_MIB=256 CUT=75 RUNS=3 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --size) [ $# -ge 2 ] || usage; SIZE_MIB=$2; shift 2 ;;
    --cut) [ $# -ge 2 ] || usage; CUT=$2; shift 2 ;;
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) header; exit 0 ;;
    *) echo "bench/faults.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
for v in SIZE_MIB RUNS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "bench/faults.sh: --${v%%_*} must be a positive integer" >&2 && exit 2; }
done
[[ "$CUT" =~ ^[1-9][0-9]?$ ]] || { echo "bench/faults.sh: --cut must be 1..99" >&2; exit 2; }

IM_BIN=${IM_BIN:-$REPO_ROOT/build-release/image-migrator}
SKOPEO=${BENCH_SKOPEO:-skopeo}
IM_BUILD_DIR=${IM_BUILD_DIR:-$REPO_ROOT/build-release}
FAULT_PROXY_BIN=${FAULT_PROXY_BIN:-$IM_BUILD_DIR/tests/faultproxy/fault_proxy}
[ -x "$IM_BIN" ] || { echo "bench/faults.sh: $IM_BIN is missing (see bench/run.sh for the build)" >&2; exit 1; }
if [ ! -x "$FAULT_PROXY_BIN" ]; then
  cmake --build "$IM_BUILD_DIR" -j"$(nproc)" --target fault_proxy >/dev/null ||
    { echo "bench/faults.sh: cannot build fault_proxy in $IM_BUILD_DIR" >&2; exit 1; }
fi
export FAULT_PROXY_BIN

# shellcheck source=../tests/integration/lib.sh
source "$REPO_ROOT/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
bench_setup
echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$W/policy.json"

start_registry src plain
start_proxy srcp "$SRC_ADDR"
SIZE=$((SIZE_MIB * 1048576))
CUT_BYTES=$((SIZE / 100 * CUT))
blog "image-migrator $("$IM_BIN" --version 2>&1 | head -n 1), $("$SKOPEO" --version); layer $SIZE_MIB MiB, reset after $CUT% ($CUT_BYTES bytes), $RUNS runs"
make_layout "$W/layout" v1 --layers 1 --layer-size "$SIZE" --seed faults-bench >/dev/null
seed "$W/layout" v1 "$SRC_ADDR/ns/big:v1"
rm -rf "$W/layout"
DIGEST=$(raw_digest "$SRC_ADDR/ns/big:v1")
LAYER=$(raw_manifest "$SRC_ADDR/ns/big:v1" | jq -r '.layers[0].digest')

# source_bytes FROM_LINE: bytes the source registry logged for GETs of the layer after that line.
source_bytes() {
  tail -n +"$1" "$SRC_LOG" | awk -v d="$LAYER" '$6 == "\"GET" && index($7, d) > 0 { s += $10 } END { print s + 0 }'
}

: >"$W/results.tsv"
for ((run = 1; run <= RUNS; run++)); do
  order=(im skopeo)
  ((run % 2 == 0)) && order=(skopeo im)
  for case in clean reset; do
    for tool in "${order[@]}"; do
      name=d-$tool-$case-$run
      start_registry "$name" plain
      N=$(_im_upper "$name")
      addr_var=${N}_ADDR
      dst=${!addr_var}
      if [ "$case" == reset ]; then
        set_rules "$SRCP_RULES" "GET /v2/ns/big/blobs/$LAYER reset-response-after=$CUT_BYTES"
      else
        set_rules "$SRCP_RULES"
      fi
      from=$(($(wc -l <"$SRC_LOG") + 1))
      rc=0
      if [ "$tool" == im ]; then
        printf '{"%s": {"insecure": true}, "%s": {"insecure": true}}\n' "$SRCP_ADDR" "$dst" >"$W/auth.json"
        printf '{"%s/ns/big:v1": "%s/ns/big:v1"}\n' "$SRCP_ADDR" "$dst" >"$W/images.json"
        bench_measure "$W/$name" "$IM_BIN" --auth "$W/auth.json" --images "$W/images.json" -r 3 --log "" || rc=$?
      else
        bench_measure "$W/$name" "$SKOPEO" --policy "$W/policy.json" --tmpdir "$W/.tmp" copy --retry-times 3 \
          --src-tls-verify=false --dest-tls-verify=false --preserve-digests \
          "docker://$SRCP_ADDR/ns/big:v1" "docker://$dst/ns/big:v1" || rc=$?
      fi
      got=$(raw_digest "$dst/ns/big:v1" 2>/dev/null) || got=missing
      sleep 0.2 # the access log line of a reset request comes when its handler returns
      bytes=$(source_bytes "$from")
      ok=ok
      [ "$rc" == 0 ] && [ "$got" == "$DIGEST" ] || ok="FAILED(rc=$rc, digest $got)"
      blog "run $run $case $tool: ${M_WALL}s, source sent $((bytes / 1048576)) MiB, $ok"
      printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$case" "$M_WALL" "$bytes" "$ok" >>"$W/results.tsv"
      [ "$ok" == ok ] || { tail -n 20 "$W/$name.out" >&2; }
      stop_registry "$name"
      rm -rf "${W:?}/$name/data"
    done
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo
echo "Layer of $SIZE_MIB MiB, reset after $CUT% in the \"reset\" case; medians of $RUNS runs"
echo
echo "| case | tool | wall s | MiB sent by the source | failed runs |"
echo "|---|---|---:|---:|---:|"
for case in clean reset; do
  for tool in im skopeo; do
    label=image-migrator
    [ "$tool" == skopeo ] && label="skopeo copy --retry-times 3"
    sel() { awk -F'\t' -v t="$tool" -v c="$case" -v f="$1" '$1 == t && $2 == c { print $f }' "$W/results.tsv"; }
    wall=$(sel 3 | median)
    mib=$(sel 4 | median | awk '{ printf "%.0f", $1 / 1048576 }')
    bad=$(awk -F'\t' -v t="$tool" -v c="$case" '$1 == t && $2 == c && $5 != "ok"' "$W/results.tsv" | wc -l)
    echo "| $case | $label | $wall | $mib | $bad |"
  done
done
! grep -qv $'\tok$' "$W/results.tsv"

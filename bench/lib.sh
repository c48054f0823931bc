# shellcheck shell=bash
# bench/lib.sh - measurement, verification and report helpers for bench/run.sh.
# Sourced after tests/integration/lib.sh (needs im_setup's $IM_WORK, _im_track, raw_digest).
#
#   bench_measure PREFIX CMD...      run CMD under bench/measure; sets M_WALL M_USER M_SYS M_RSS_KB
#   bench_record WL TOOL RUN BYTES   append the last measurement to $BENCH_RESULTS
#   bench_verify_tags SRC DST REPO_TAGS_FILE   every "repo tag" has the same digest on both sides
#   bench_median                     median of numbers on stdin
#   bench_report                     the table + PASS/MISS lines (stdout)
#   bench_setup                      the work directory, a snapshot of $IM_BIN, $BENCH_RESULTS, bench/measure
#   bench_via ADDR                   the address to reach ADDR at: itself, or (with $RTT) a relay in front of it


blog() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

bench_die() {
  printf 'bench: ERROR: %s\n' "$*" >&2
  exit 1
}

# Process group of the command being measured, killed at exit (the launcher does
# not forward SIGTERM to its child).
_BENCH_PGID=
_bench_kill_current() {
  [ -n "$_BENCH_PGID" ] && kill -TERM -- "-$_BENCH_PGID" 2>/dev/null
  _BENCH_PGID=
  return 0
}

# bench_setup: the start the bench scripts share, after both libraries are sourced: $IM_BIN
# (default build-release/image-migrator) must exist; the work
# directory under $BENCH_TMPDIR (kept with KEEP=1), W=$IM_WORK, $IM_BIN copied into it (a rebuild
# meanwhile changes nothing measured), an empty $BENCH_RESULTS, bench/measure compiled.
bench_setup() {
  IM_BIN=${IM_BIN:-$REPO_ROOT/build-release/image-migrator}
  [ -x "$IM_BIN" ] || bench_die "$IM_BIN is missing; build it: cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release && cmake --build build-release -j2 --target image-migrator"
  TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}/image-migrator-bench}
  mkdir -p "$TMPDIR"
  export TMPDIR
  [ "${KEEP:-0}" == 1 ] && export IM_KEEP=1
  im_setup
  im_on_exit _bench_kill_current
  W=$IM_WORK
  cp "$IM_BIN" "$W/image-migrator"
  IM_BIN=$W/image-migrator
  BENCH_RESULTS=$W/results.tsv
  : >"$BENCH_RESULTS"
  bench_build_measure "$W"
}

# bench_via ADDR: the address the tools use for the registry at ADDR: itself, or (RTT > 0) a relay
# (bench/relay.py, RTT ms, BANDWIDTH Mbit/s when set) in front of it, started on first use.
bench_via() {
  local addr=$1 d
  if [ "${RTT:-0}" == 0 ]; then
    echo "$addr"
    return
  fi
  d=$W/relay-${addr##*:}
  if [ ! -s "$d/port" ]; then
    spawn_listener "relay to $addr" "$d" python3 "$BENCH_DIR/relay.py" --upstream "$addr" --rtt "$RTT" \
      --bandwidth "${BANDWIDTH:-0}" --port-file "$d/port" >&2
  fi
  echo "127.0.0.1:$(cat "$d/port")"
}

# bench_build_measure DIR: compiles bench/measure.c into DIR/measure; sets BENCH_MEASURE_BIN.
bench_build_measure() {
  BENCH_MEASURE_BIN=$1/measure
  "${CC:-cc}" -O2 -o "$BENCH_MEASURE_BIN" "$BENCH_DIR/measure.c" || bench_die "cannot compile bench/measure.c (a C compiler is needed)"
}

# bench_measure PREFIX CMD...: runs CMD (stdout+stderr to PREFIX.out) in its own process group
# (same session: same scheduler autogroup as the registries) under bench/measure: wall time from
# just before its fork to its exit, user/sys/peak RSS from wait4's rusage. Returns CMD's exit
# status.
bench_measure() {
  local pfx=$1 pid rc=0 line
  shift
  rm -f "$pfx.time"
  "$BENCH_MEASURE_BIN" "$pfx.time" "$@" >"$pfx.out" 2>&1 </dev/null &
  pid=$!
  _BENCH_PGID=$pid
  _im_track "$pid"
  wait "$pid" || rc=$?
  _im_untrack "$pid"
  _BENCH_PGID=
  line=$(tail -n 1 "$pfx.time" 2>/dev/null) || line=
  # shellcheck disable=SC2034 # used by the caller
  read -r M_WALL M_USER M_SYS M_RSS_KB <<<"$line"
  [[ "${M_WALL:-}" =~ ^[0-9.]+$ && "${M_USER:-}" =~ ^[0-9.]+$ && "${M_SYS:-}" =~ ^[0-9.]+$ && "${M_RSS_KB:-}" =~ ^[0-9]+$ ]] || {
    M_WALL=0 M_USER=0 M_SYS=0 M_RSS_KB=0
    [ "$rc" != 0 ] || rc=125
  }
  M_WALL=$(awk -v w="$M_WALL" 'BEGIN { printf "%.4f", w }')
  return "$rc"
}

# bench_reg_cpu PID...: CPU seconds (user+sys) used so far by these processes (the registries).
bench_reg_cpu() {
  local p t=0 f
  for p in "$@"; do
    f=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || f=0
    t=$((t + f))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# bench_record WORKLOAD TOOL RUN BYTES [REGISTRY_CPU]: one TSV line per measurement
# (workload tool run wall user sys rss_kib bytes registry_cpu).
bench_record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$M_WALL" "$M_USER" "$M_SYS" "$M_RSS_KB" "$4" \
    "${5:-0}" >>"$BENCH_RESULTS"
  blog "$(printf '%-10s %-14s run %s: wall %7.3f s  cpu %6.2f s  peak RSS %6.1f MiB  registries cpu %6.2f s' \
    "$1" "$2" "$3" "$M_WALL" "$(awk -v u="$M_USER" -v s="$M_SYS" 'BEGIN { print u + s }')" \
    "$(awk -v k="$M_RSS_KB" 'BEGIN { print k / 1024 }')" "${5:-0}")"
}

# bench_fail_output PREFIX MSG: show the end of a failed command's output, then die.
bench_fail_output() {
  echo "---- last lines of $1.out" >&2
  tail -n 30 "$1.out" >&2 || true
  bench_die "$2"
}

# _bench_head_digests ADDR LIST: "repo tag" lines -> "repo tag digest" (one curl
# process, HEAD per manifest, Docker-Content-Digest header; empty if missing).
_bench_head_digests() {
  local addr=$1 list=$2 urls=() repo tag
  while read -r repo tag; do
    [ -n "$repo" ] && urls+=(-o /dev/null "${BENCH_SCHEME:-http}://$addr/v2/$repo/manifests/$tag")
  done <"$list"
  [ ${#urls[@]} -gt 0 ] || return 0
  local ca=()
  [ -n "${BENCH_CA:-}" ] && ca=(--cacert "$BENCH_CA")
  curl -s --noproxy '*' --max-time 120 -I "${ca[@]}" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    -w '%{http_code} %header{docker-content-digest}\n' "${urls[@]}" | paste -d' ' "$list" -
}

# bench_verify_tags SRC_ADDR DST_ADDR LIST SAMPLE: every "repo tag" of LIST has the
# same manifest digest at DST as at SRC (HEAD, registry-computed), and for every
# SAMPLE-th line the exact manifest bytes hash equal too (raw_digest = skopeo
# inspect --raw). Returns 1 with a message on the first difference.
bench_verify_tags() {
  local src=$1 dst=$2 list=$3 sample=${4:-1} both n=0 bad='' repo tag scode sd _r _t dcode dd s d
  both=$(mktemp "$IM_WORK/.tmp/v.XXXXXX")
  paste -d' ' <(_bench_head_digests "$src" "$list") <(_bench_head_digests "$dst" "$list") >"$both"
  while read -r repo tag scode sd _r _t dcode dd; do
    n=$((n + 1))
    if [ "$scode" != 200 ] || [ "$dcode" != 200 ] || [ -z "$sd" ] || [ "$sd" != "$dd" ]; then
      bad="$repo:$tag differs: source $scode ${sd:-}, destination $dcode ${dd:-}"
      break
    fi
    [ $(((n - 1) % sample)) == 0 ] || continue
    if ! s=$(raw_digest "$src/$repo:$tag") || ! d=$(raw_digest "$dst/$repo:$tag"); then
      bad="raw_digest of $repo:$tag failed"
      break
    fi
    if [ "$s" != "$d" ]; then
      bad="raw manifest of $repo:$tag differs: $s vs $d"
      break
    fi
  done <"$both"
  rm -f "$both"
  [ "$n" -gt 0 ] || bad="empty list $list"
  [ "$n" == "$(grep -c . "$list")" ] || [ -n "$bad" ] || bad="checked $n of $(grep -c . "$list") images"
  if [ -n "$bad" ]; then
    echo "verify: $bad" >&2
    return 1
  fi
}

# bench_median: median of the numbers on stdin (mean of the middle two for an even count).
bench_median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# _bench_med WORKLOAD TOOL COLUMN: median of a column (4 wall, 5 user, 6 sys, 7 rss KiB,
# 9 registries' CPU, 0 = user + sys) over all runs of WORKLOAD by TOOL.
_bench_med() {
  awk -F'\t' -v w="$1" -v t="$2" -v c="$3" '$1 == w && $2 == t { print (c == 0 ? $5 + $6 : $c) }' \
    "$BENCH_RESULTS" | bench_median
}

_bench_bytes() {
  awk -F'\t' -v w="$1" '$1 == w { print $8; exit }' "$BENCH_RESULTS"
}

_bench_n() {
  awk -F'\t' -v w="$1" -v t="$2" '$1 == w && $2 == t { n++ } END { print n + 0 }' "$BENCH_RESULTS"
}

# Per-run ratios skopeo/image-migrator of wall time for WORKLOAD (min..max), to show the spread.
_bench_ratio_range() {
  awk -F'\t' -v w="$1" '$1 == w && $2 == "image-migrator" { im[$3] = $4 } $1 == w && $2 == "skopeo" { sk[$3] = $4 }
    END { for (r in im) if ((r in sk) && im[r] > 0) { x = sk[r] / im[r]; if (n == 0 || x < lo) lo = x; if (n == 0 || x > hi) hi = x; n++ }
          if (n) printf "%.2f..%.2f", lo, hi; else printf "-" }' "$BENCH_RESULTS"
}

# BENCH_WORKLOADS: "name|label|bytes-meaningful(0/1)" lines, in table order.
# bench_report: prints the markdown table and the PASS/MISS lines; sets BENCH_MISSES.
bench_report() {
  local line wl label thr tool wall cpu rss bytes mbs cpg n
  local -A W C R
  echo
  echo "| workload | tool | runs | wall s | CPU s (user+sys) | peak RSS MiB | MB/s | CPU s/GB | registries' CPU s |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for line in "${BENCH_WORKLOADS[@]}"; do
    IFS='|' read -r wl label thr <<<"$line"
    bytes=$(_bench_bytes "$wl")
    [ -n "$bytes" ] || continue
    for tool in image-migrator skopeo; do
      n=$(_bench_n "$wl" "$tool")
      [ "$n" -gt 0 ] || continue
      wall=$(_bench_med "$wl" "$tool" 4)
      cpu=$(_bench_med "$wl" "$tool" 0)
      rss=$(_bench_med "$wl" "$tool" 7)
      W[$wl.$tool]=$wall C[$wl.$tool]=$cpu R[$wl.$tool]=$rss
      if [ "$thr" == 1 ]; then
        mbs=$(awk -v b="$bytes" -v w="$wall" 'BEGIN { printf "%.1f", (w > 0 ? b / 1e6 / w : 0) }')
        cpg=$(awk -v b="$bytes" -v c="$cpu" 'BEGIN { printf "%.2f", c / (b / 1e9) }')
      else
        mbs=- cpg=-
      fi
      printf '| %s | %s | %s | %.3f | %.2f | %.1f | %s | %s | %.2f |\n' "$label" "$tool" "$n" "$wall" "$cpu" \
        "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$mbs" "$cpg" "$(_bench_med "$wl" "$tool" 9)"
    done
    if [ -n "${W[$wl.image-migrator]:-}" ] && [ -n "${W[$wl.skopeo]:-}" ]; then
      printf '| %s | **skopeo ÷ image-migrator** | | **%s** | %s | %s | | | |\n' "$label" \
        "$(_bench_x "${W[$wl.skopeo]}" "${W[$wl.image-migrator]}")" \
        "$(_bench_x "${C[$wl.skopeo]}" "${C[$wl.image-migrator]}")" \
        "$(_bench_x "${R[$wl.skopeo]}" "${R[$wl.image-migrator]}")"
    fi
  done
  echo
  echo "Medians over the runs; ratio = skopeo's median / image-migrator's median (> 1: image-migrator is"
  echo "faster / uses less). MB/s = distinct source blob bytes (10^6) / wall; CPU s/GB = the tool's CPU s per"
  echo "10^9 bytes; registries' CPU s = CPU used meanwhile by the source + destination docker-registry processes."
  printf 'Per-run wall ratios (skopeo/image-migrator): many-small %s, no-op %s, no-op without tag digests %s, big %s, tags %s\n' \
    "$(_bench_ratio_range many-small)" "$(_bench_ratio_range no-op)" "$(_bench_ratio_range no-op-cold)" \
    "$(_bench_ratio_range big)" "$(_bench_ratio_range tags)"
  if [ "${BANDWIDTH:-0}" != 0 ]; then
    printf 'The cap: %s Mbit/s = %.1f MB/s each way.\n' "$BANDWIDTH" "$(awk -v b="$BANDWIDTH" 'BEGIN { print b / 8 }')"
  fi
  echo

  BENCH_MISSES=0
  if [ "${RTT:-0}" != 0 ]; then # the WAN targets (issue 22)
    _bench_target_ratio many-small 15 "many-small at ${RTT} ms: image-migrator >= 15x faster than skopeo sync"
    _bench_target_ratio no-op 30 "no-op at ${RTT} ms: image-migrator >= 30x faster than skopeo sync"
    _bench_target_ratio big 1.5 "big at ${RTT} ms: image-migrator >= 1.5x faster than skopeo sync"
    _bench_target_ratio tags 10 "tags at ${RTT} ms: image-migrator >= 10x faster than skopeo sync"
  else
    _bench_target_ratio many-small 2.0 "many-small: image-migrator >= 2.0x faster than skopeo sync"
    _bench_target_ratio no-op 5.0 "no-op: image-migrator >= 5x faster than skopeo sync"
    _bench_target_ratio big 1.2 "big: image-migrator >= 1.2x faster than skopeo sync"
  fi
  local rl=${R[mem-large.image-migrator]:-} rs=${R[mem-small.image-migrator]:-}
  if [ -n "$rl" ]; then
    _bench_verdict "$(awk -v r="$rl" 'BEGIN { print (r / 1024 <= 64) }')" \
      "$(printf 'memory: image-migrator peak RSS <= 64 MiB with a %s layer (median %.1f MiB)' "$MEM_LARGE_LABEL" \
        "$(awk -v r="$rl" 'BEGIN { print r / 1024 }')")"
  fi
  if [ -n "$rl" ] && [ -n "$rs" ]; then
    # "Flat": the larger layer (8x the bytes) may cost at most 8 MiB more peak RSS.
    _bench_verdict "$(awk -v a="$rs" -v b="$rl" 'BEGIN { print ((b - a) / 1024 <= 8) }')" \
      "$(printf 'memory: peak RSS flat as the layer grows (%s: %.1f MiB -> %s: %.1f MiB, %+.1f MiB; limit +8 MiB)' \
        "$MEM_SMALL_LABEL" "$(awk -v r="$rs" 'BEGIN { print r / 1024 }')" "$MEM_LARGE_LABEL" \
        "$(awk -v r="$rl" 'BEGIN { print r / 1024 }')" "$(awk -v a="$rs" -v b="$rl" 'BEGIN { print (b - a) / 1024 }')")"
  fi
  local w
  for w in big mem-large; do
    if [ -z "${C[$w.image-migrator]:-}" ] || [ -z "${C[$w.skopeo]:-}" ]; then continue; fi
    local bytes_w im_cpg sk_cpg
    bytes_w=$(_bench_bytes "$w")
    im_cpg=$(awk -v b="$bytes_w" -v c="${C[$w.image-migrator]}" 'BEGIN { printf "%.2f", c / (b / 1e9) }')
    sk_cpg=$(awk -v b="$bytes_w" -v c="${C[$w.skopeo]}" 'BEGIN { printf "%.2f", c / (b / 1e9) }')
    _bench_verdict "$(awk -v a="$im_cpg" -v b="$sk_cpg" 'BEGIN { print (a <= b) }')" \
      "$(printf 'CPU s/GB (%s): image-migrator %s <= skopeo %s' "$w" "$im_cpg" "$sk_cpg")"
  done
}

_bench_div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "inf" }'; }
_bench_x() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "-" }'; }

_bench_verdict() {
  if [ "$1" == 1 ]; then
    printf 'PASS  %s\n' "$2"
  else
    printf 'MISS  %s\n' "$2"
    BENCH_MISSES=$((BENCH_MISSES + 1))
  fi
}

_bench_target_ratio() {
  local wl=$1 want=$2 msg=$3 im sk r
  im=$(_bench_med "$wl" image-migrator 4)
  sk=$(_bench_med "$wl" skopeo 4)
  [ "$im" != nan ] && [ "$sk" != nan ] || return 0
  r=$(_bench_div "$sk" "$im")
  _bench_verdict "$(awk -v r="$r" -v w="$want" 'BEGIN { print (r == "inf" || r >= w) }')" "$msg (median ratio ${r}x)"
}

#!/usr/bin/env bash
# bench/relay-check.sh: shows that bench/relay.py emulates a WAN faithfully, with curl's own timings.
#
# Usage: bench/relay-check.sh [--rtt MS] [--bandwidth MBIT]   (defaults: 50 ms, 80 Mbit/s)
#
# Against a local HTTP/1.1 server (python3 -m http.server), through the relay, it measures:
#   1. one GET on a new connection: the TCP handshake's round trip + the request's = 2 RTT;
#   2. three GETs on one kept-alive connection: 2 RTT for the first, 1 RTT for each other = 4 RTT;
#   3. an 8 MB body at the bandwidth cap: 8 MB / cap + 2 RTT.
# Each line prints curl's time against the expected one; the script exits 1 when one is off by more
# than 15% + 15 ms (a loaded machine can add a little; it can never remove time).
set -euo pipefail
RTT=50 BW=80
# The comment block at the top: on stderr with exit 2 after a mistake, on stdout with exit 0 for --help.
header() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
usage() { header >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rtt) [ $# -ge 2 ] || usage; RTT=$2; shift 2 ;;
    --rtt=*) RTT=${1#*=}; shift ;;
    --bandwidth) [ $# -ge 2 ] || usage; BW=$2; shift 2 ;;
    --bandwidth=*) BW=${1#*=}; shift ;;
    -h | --help) header; exit 0 ;;
    *) echo "bench/relay-check.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ "$RTT" =~ ^[1-9][0-9]*$ ]] || { echo "bench/relay-check.sh: --rtt must be a positive whole number of milliseconds" >&2; exit 2; }
[[ "$BW" =~ ^[1-9][0-9]*$ ]] || { echo "bench/relay-check.sh: --bandwidth must be a positive whole number of Mbit/s" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
d=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$d"
}
trap cleanup EXIT
echo small >"$d/small"
head -c 8000000 /dev/urandom >"$d/big"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$d" && exec python3 -m http.server --bind 127.0.0.1 --protocol HTTP/1.1 "$port") >/dev/null 2>&1 &
pids+=($!)
python3 "$here/relay.py" --upstream "127.0.0.1:$port" --rtt "$RTT" --port-file "$d/p1" &
pids+=($!)
python3 "$here/relay.py" --upstream "127.0.0.1:$port" --rtt "$RTT" --bandwidth "$BW" --port-file "$d/p2" &
pids+=($!)
for _ in $(seq 100); do
  [ -s "$d/p1" ] && [ -s "$d/p2" ] && curl -s -o /dev/null "http://127.0.0.1:$port/small" && break
  sleep 0.05
done
r1=127.0.0.1:$(cat "$d/p1") r2=127.0.0.1:$(cat "$d/p2")
status=0
check() { # LABEL MEASURED_S EXPECTED_S
  local verdict
  verdict=$(awk -v m="$2" -v e="$3" 'BEGIN { print (m >= e * 0.97 && m <= e * 1.15 + 0.015) ? "ok" : "OFF" }')
  printf '%-52s measured %6.3f s, expected %6.3f s  %s\n' "$1" "$2" "$3" "$verdict"
  [ "$verdict" == ok ] || status=1
}
rtt_s=$(awk -v r="$RTT" 'BEGIN { print r / 1000 }')
t=$(curl -s -o /dev/null -w '%{time_total}' "http://$r1/small")
check "1. one GET, new connection (2 RTT)" "$t" "$(awk -v r="$rtt_s" 'BEGIN { print 2 * r }')"
t=$(curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{time_total}\n' "http://$r1/small" "http://$r1/small" "http://$r1/small" |
  awk '{ s += $1 } END { print s }')
check "2. three GETs, one connection (4 RTT)" "$t" "$(awk -v r="$rtt_s" 'BEGIN { print 4 * r }')"
t=$(curl -s -o /dev/null -w '%{time_total}' "http://$r2/big")
check "3. 8 MB at $BW Mbit/s (8 MB / cap + 2 RTT)" "$t" "$(awk -v r="$rtt_s" -v b="$BW" 'BEGIN { print 8e6 * 8 / (b * 1e6) + 2 * r }')"
exit $status

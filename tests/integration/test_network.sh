#!/usr/bin/env bash
# Networks of real companies: --resolve points a made-up host name at a loopback registry (no
# /etc/hosts edit), a per-registry "address" does the same from auth.json, and --limit-rate caps the
# bandwidth (a lower bound on the time: 8 MB at 2 MB/s cannot take less than ~3 s).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
# Runs pass --blob-cache "": what each copies, earlier runs put into other repositories of the same
# registry, and the copy itself is what is tested (not a mount from the blob memory).

start_registry src plain
start_registry dst plain
sport=${SRC_ADDR#*:}
dport=${DST_ADDR#*:}
make_layout "$IM_WORK/layout" v1 --layers 1 --layer-size 8000000 --seed net >/dev/null
seed "$IM_WORK/layout" v1 "$SRC_ADDR/ns/app:1"
cd "$IM_WORK"
src_name="registry.made-up.invalid:$sport"
dst_name="mirror.made-up.invalid:$dport"
cat >auth.json <<JSON
{"$src_name": {"insecure": true}, "$dst_name": {"insecure": true, "address": "127.0.0.1"}}
JSON
echo "{\"$src_name/ns/app:1\": \"$dst_name/ns/app\"}" >images.json

rc=0
im_run "$IM_BIN" --blob-cache "" --auth auth.json --images images.json -r 0 --log "" >no-resolve.out 2>&1 || rc=$?
cat no-resolve.out
assert_eq "$rc" 1 "without --resolve the made-up name does not resolve"
grep -q "FAILED .*registry.made-up.invalid.*resolve" no-resolve.out || fail "no clear resolve error"

rc=0
im_run "$IM_BIN" --blob-cache "" --auth auth.json --images images.json -r 0 --log "" --resolve "registry.made-up.invalid:$sport:127.0.0.1" \
  >resolve.out 2>&1 || rc=$?
cat resolve.out
assert_eq "$rc" 0 "--resolve for the source, \"address\" for the destination: copied"
assert_eq "$(raw_digest "$DST_ADDR/ns/app:1")" "$(raw_digest "$SRC_ADDR/ns/app:1")" "digest preserved"

echo "{\"$src_name/ns/app:1\": \"$dst_name/ns/slow\"}" >images2.json
start=$(date +%s%N)
im_run "$IM_BIN" --blob-cache "" --auth auth.json --images images2.json -r 0 -w 1 --log "" --limit-rate 2M \
  --resolve "registry.made-up.invalid:$sport:127.0.0.1" >slow.out 2>&1 || fail "rate-limited copy failed"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -ge 2500 ] || fail "8 MB at --limit-rate 2M took only $ms ms"
pass "--limit-rate 2M: 8 MB took $ms ms (>= 2500)"
assert_eq "$(raw_digest "$DST_ADDR/ns/slow:1")" "$(raw_digest "$SRC_ADDR/ns/app:1")" "rate-limited copy: digest preserved"

# The budget is one total, not a share per worker: a lone transfer may use all of it (c4e1e45 split
# it statically, 8M / 8 workers = 1 MB/s here: 8 s for this image), and two images copied at once
# share it (16 MB at 8 MB/s cannot take much less than 2 s).
make_layout "$IM_WORK/layout" v2 --layers 1 --layer-size 8000000 --seed net2 >/dev/null
seed "$IM_WORK/layout" v2 "$SRC_ADDR/ns/app:2"
echo "{\"$src_name/ns/app:1\": \"$dst_name/ns/alone\"}" >images3.json
start=$(date +%s%N)
im_run "$IM_BIN" --blob-cache "" --auth auth.json --images images3.json -r 0 -w 8 --log "" --limit-rate 8M \
  --resolve "registry.made-up.invalid:$sport:127.0.0.1" >alone.out 2>&1 || fail "rate-limited copy failed"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 5000 ] || fail "8 MB at --limit-rate 8M with 8 workers took $ms ms: the budget is split per worker"
pass "--limit-rate 8M, 8 workers, one transfer: 8 MB took $ms ms (< 5000; a per-worker split takes 8000)"
echo "{\"$src_name/ns/app:1\": \"$dst_name/ns/both1\", \"$src_name/ns/app:2\": \"$dst_name/ns/both2\"}" >images4.json
start=$(date +%s%N)
im_run "$IM_BIN" --blob-cache "" --auth auth.json --images images4.json -r 0 -w 8 --log "" --limit-rate 8M \
  --resolve "registry.made-up.invalid:$sport:127.0.0.1" >both.out 2>&1 || fail "rate-limited copy of two images failed"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -ge 1500 ] || fail "16 MB at --limit-rate 8M took only $ms ms: the budget is not shared"
pass "--limit-rate 8M, two transfers at once: 16 MB took $ms ms (>= 1500)"

# Registries that cannot be reached: said once per registry, then one short line per image (c4e1e45:
# 18 lines for 2 images, each with the URL twice).
echo '{"127.0.0.1:1": {"insecure": true}, "127.0.0.1:2": {"insecure": true}}' >auth-down.json
echo '{"127.0.0.1:1/ns/a:1": "127.0.0.1:2/ns/a:1", "127.0.0.1:1/ns/b:1": "127.0.0.1:2/ns/b:1"}' >images-down.json
rc=0
im_run "$IM_BIN" --blob-cache "" --auth auth-down.json --images images-down.json -r 0 --log "" >down.out 2>&1 || rc=$?
cat down.out
assert_eq "$rc" 1 "unreachable registries: exit 1"
assert_eq "$(grep -c 'warn.* cannot be reached: ' down.out)" 2 "one warning per unreachable registry"
assert_eq "$(grep -c 'FAILED ' down.out)" 2 "one FAILED line per image"
assert_eq "$(grep -c 'FAILED .*: 127.0.0.1:1 cannot be reached (above)$' down.out)" 1 "... the second one short"
if grep 'http://127.0.0.1:1/v2/ns/a/manifests/1.*http://127.0.0.1:1/v2/ns/a/manifests/1' down.out; then
  fail "a line names the URL twice"
fi
pass "unreachable registries: $(wc -l <down.out) lines for 2 images"
echo "test_network: all checks passed"

#!/usr/bin/env bash
# Security, class 6 (issue 17): files are written safely, in any directory. Another user of a shared
# directory could plant symlinks at the tool's predictable temporary names (".NAME.tmp-PID") and have
# it truncate or overwrite a file of theirs choosing, or read pull-secret passwords; the auth.json
# rewrite was not durable. Now every file goes through one helper: an unpredictable name created
# exclusively (O_EXCL|O_NOFOLLOW), the mode set before any byte, fsync of the file, rename, fsync of
# the directory; the log is opened without following a symlink. Checked with planted symlinks and
# with strace (the order of the system calls).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
command -v strace >/dev/null || fail "strace is missing (scripts/install-deps installs it)"

start_registry src plain
start_registry dst htpasswd
L=$IM_WORK/layout
make_layout "$L" v1 --layers 1 --layer-size 2048 --seed files >/dev/null
seed "$L" v1 "$SRC_ADDR/team/app:v1"
cat >"$IM_WORK/images.json" <<JSON
{"$SRC_ADDR/team/app:v1": "$DST_ADDR/org/app:v1"}
JSON
auth() {
  cat >"$1" <<JSON
{"$SRC_ADDR": {"insecure": true}, "$DST_ADDR": {"insecure": true, "username": "alice", "password": "alicepass"}}
JSON
}

# 1. Symlinks planted at every name the old scheme could pick for the next few hundred PIDs.
out=$IM_WORK/shared-dir
mkdir -p "$out"
printf 'precious\n' >"$IM_WORK/victim"
python3 - "$out" "$IM_WORK/victim" <<'PY'
import os, sys
out, victim = sys.argv[1], sys.argv[2]
last = int(open("/proc/sys/kernel/ns_last_pid").read())
for pid in range(last + 1, last + 3000):
    for name in ("report.json", "failed.json"):
        os.symlink(victim, f"{out}/.{name}.tmp-{pid}")
PY
auth "$IM_WORK/auth.json"
run_im planted --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "" --digest-cache "" \
  --report "$out/report.json" --write-failed "$out/failed.json" --no-encrypt-auth
cat "$IM_WORK/planted.out"
assert_eq "$rc" 0 "the run succeeds beside the planted symlinks"
assert_eq "$(cat "$IM_WORK/victim")" "precious" "the file the symlinks point at is untouched"
[ ! -L "$out/report.json" ] && jq -e '.images[0].status == "copied"' "$out/report.json" >/dev/null ||
  fail "the report is not a regular file with the run's result"
pass "the report and the failed list are regular files of their own"

# 2. The log is never opened through a symlink.
ln -s "$IM_WORK/victim" "$out/run.log"
run_im logsym --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "$out/run.log" --digest-cache "" \
  --no-encrypt-auth
cat "$IM_WORK/logsym.out"
assert_eq "$rc" 2 "a log path that is a symlink is refused (exit 2)"
grep -q "$out/run.log.*symbolic link" "$IM_WORK/logsym.out" || fail "the refusal does not name the log file and why"
assert_eq "$(cat "$IM_WORK/victim")" "precious" "the symlink's target is untouched"

# 3. The auth.json rewrite (passwords encrypted in place) and the report: exclusive creation, mode
#    before data, fsync before rename, directory fsync after it (strace shows the order).
auth "$IM_WORK/enc-auth.json"
export XDG_CONFIG_HOME=$IM_WORK/xdg-config
rc=0
# (LeakSanitizer cannot run under ptrace: the sanitizer build's leak check is off for this one run.)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  strace -f -qq -o "$IM_WORK/strace.txt" -e trace=openat,fchmod,write,fsync,rename,link \
  "$IM_BIN" --auth "$IM_WORK/enc-auth.json" --images "$IM_WORK/images.json" --log "" --digest-cache "" \
  --report "$out/strace-report.json" >"$IM_WORK/strace.out" 2>&1 || rc=$?
cat "$IM_WORK/strace.out"
assert_eq "$rc" 0 "the run under strace succeeds"
grep -q '"password": "enc:v1:' "$IM_WORK/enc-auth.json" || fail "auth.json was not rewritten"
assert_eq "$(stat -c %a "$IM_WORK/enc-auth.json")" 600 "auth.json is 0600"
python3 - "$IM_WORK/strace.txt" "$IM_WORK/enc-auth.json" "$out/strace-report.json" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
for target in sys.argv[2:]:
    base = target.rsplit("/", 1)
    tmp_re = re.compile(r'openat\(AT_FDCWD, "(' + re.escape(base[0]) + r'/\.' + re.escape(base[1]) + r'\.[A-Za-z0-9]{16}\.tmp)", ([^,]+), 0600\) = (\d+)')
    opened = [(i, m) for i, l in enumerate(lines) for m in [tmp_re.search(l)] if m]
    assert opened, f"{target}: no temporary file opened with an unpredictable name"
    i0, m = opened[-1]
    tmp, flags, fd = m.group(1), m.group(2), m.group(3)
    assert "O_EXCL" in flags and "O_NOFOLLOW" in flags and "O_CREAT" in flags, f"{target}: flags {flags}"
    pid = lines[i0].split()[0]
    mine = [(i, l) for i, l in enumerate(lines) if i > i0 and l.split()[0] == pid]
    def first(pattern, after=-1):
        for i, l in mine:
            if i > after and re.search(pattern, l):
                return i
        raise AssertionError(f"{target}: no {pattern!r} after the open")
    chmod = first(rf'fchmod\({fd}, 06[04]{{2}}\)')
    write = first(rf'write\({fd}, ')
    fsync = first(rf'fsync\({fd}\)')
    rename = first(rf'rename\("{re.escape(tmp)}", "{re.escape(target)}"\)')
    dir_open = first(rf'openat\(AT_FDCWD, "{re.escape(base[0])}", O_RDONLY[^)]*O_DIRECTORY', rename)
    dir_fd = re.search(r"= (\d+)$", lines[dir_open]).group(1)
    dir_sync = first(rf'fsync\({dir_fd}\)', dir_open)
    assert chmod < write < fsync < rename < dir_open < dir_sync, f"{target}: order {chmod} {write} {fsync} {rename} {dir_open} {dir_sync}"
    print(f"PASS: {target}: O_EXCL|O_NOFOLLOW temporary, mode, data, fsync, rename, directory fsync, in that order")
PY

# 4. A tampered layout: index.json a symlink to /dev/zero, a FIFO, a blob that is a FIFO. Each is a
#    clear error within seconds (not a memory blow-up, not a run blocked for ever).
mklayout() { rm -rf "$1"; cp -r "$L" "$1"; }
LZ=$IM_WORK/lz
mklayout "$LZ"
rm "$LZ/index.json"
ln -s /dev/zero "$LZ/index.json"
echo "{\"oci:$LZ:v1\": \"$DST_ADDR/org/lz:v1\"}" >"$IM_WORK/lz.json"
rc=0
timeout 60 "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/lz.json" --log "" --digest-cache "" --retries 0 \
  --no-encrypt-auth >"$IM_WORK/lz.out" 2>&1 || rc=$?
cat "$IM_WORK/lz.out"
[ "$rc" != 124 ] || fail "index.json -> /dev/zero: still running after 60 s"
grep -q 'index.json: a symbolic link, not a file' "$IM_WORK/lz.out" || fail "index.json -> /dev/zero: no clear error"
pass "index.json as a symlink to /dev/zero: a clear error (exit $rc)"
LF=$IM_WORK/lf
mklayout "$LF"
rm "$LF/index.json"
mkfifo "$LF/index.json"
echo "{\"oci:$LF:v1\": \"$DST_ADDR/org/lf:v1\"}" >"$IM_WORK/lf.json"
rc=0
timeout 60 "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/lf.json" --log "" --digest-cache "" --retries 0 \
  --no-encrypt-auth >"$IM_WORK/lf.out" 2>&1 || rc=$?
[ "$rc" != 124 ] || fail "index.json as a FIFO: the run blocked"
grep -q 'index.json: not a regular file' "$IM_WORK/lf.out" || { cat "$IM_WORK/lf.out"; fail "index.json as a FIFO: no clear error"; }
pass "index.json as a FIFO: a clear error (exit $rc)"
LB=$IM_WORK/lb
mklayout "$LB"
layer=$(jq -r '.layers[0].digest' "$LB/blobs/sha256/$(jq -r '.manifests[0].digest' "$LB/index.json" | cut -d: -f2)")
rm "$LB/blobs/sha256/${layer#sha256:}"
mkfifo "$LB/blobs/sha256/${layer#sha256:}"
echo "{\"oci:$LB:v1\": \"oci:$IM_WORK/lb-out:v1\"}" >"$IM_WORK/lb.json"
rc=0
timeout 60 "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/lb.json" --log "" --digest-cache "" --retries 0 \
  --no-encrypt-auth >"$IM_WORK/lb.out" 2>&1 || rc=$?
cat "$IM_WORK/lb.out"
[ "$rc" != 124 ] || fail "a layer blob as a FIFO: the run blocked"
assert_eq "$rc" 1 "a layer blob that is a FIFO fails the image"

# 5. A shared destination where someone planted blobs/sha256 as a symlink to a directory of theirs.
mkdir -p "$IM_WORK/victim-dir" "$IM_WORK/planted/blobs"
ln -s "$IM_WORK/victim-dir" "$IM_WORK/planted/blobs/sha256"
echo "{\"$SRC_ADDR/team/app:v1\": \"oci:$IM_WORK/planted:v1\"}" >"$IM_WORK/planted.json"
run_im plantdir --auth "$IM_WORK/auth.json" --images "$IM_WORK/planted.json" --log "" --digest-cache "" --retries 0 \
  --no-encrypt-auth
cat "$IM_WORK/plantdir.out"
assert_eq "$rc" 1 "a layout destination whose blobs/sha256 is a symlink is refused"
assert_eq "$(ls -A "$IM_WORK/victim-dir" | wc -l)" 0 "nothing was written into the symlink's target"
grep -q 'a symbolic link where a directory of ours belongs' "$IM_WORK/plantdir.out" || fail "the refusal does not say why"

# 6. An encryption key planted by someone else (group/world readable, or a symlink) is not used.
export XDG_CONFIG_HOME=$IM_WORK/xdg-planted
mkdir -p "$XDG_CONFIG_HOME/image-migrator"
openssl rand -base64 32 >"$XDG_CONFIG_HOME/image-migrator/key"
chmod 0644 "$XDG_CONFIG_HOME/image-migrator/key"
auth "$IM_WORK/planted-auth.json"
run_im plantkey --auth "$IM_WORK/planted-auth.json" --images "$IM_WORK/images.json" --log "" --digest-cache ""
cat "$IM_WORK/plantkey.out"
assert_eq "$rc" 2 "a key file others can read is refused (exit 2)"
grep -q "key: not used as the key" "$IM_WORK/plantkey.out" || fail "the refusal does not name the key file"
grep -q '"password": "alicepass"' "$IM_WORK/planted-auth.json" || fail "auth.json was encrypted with the planted key"
pass "auth.json is not encrypted with a key another user could know"

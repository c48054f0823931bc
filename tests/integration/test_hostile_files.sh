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

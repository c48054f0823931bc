#!/usr/bin/env bash
# auth.json is protected after the first run: plaintext passwords become enc:v1: ciphertext in place
# (file mode 0600, key file 0600), later runs decrypt them, a user can still paste a plaintext
# password, read-only files (a mounted Secret) and --no-encrypt-auth are left untouched, and
# IMAGE_MIGRATOR_KEY works instead of the key file; without a home for the key nothing is encrypted
# (and no key lands in /tmp). Passwords never appear in any output.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup
export XDG_CONFIG_HOME=$IM_WORK/xdg
unset IMAGE_MIGRATOR_KEY

start_registry src htpasswd
start_registry dst htpasswd
make_layout "$IM_WORK/layout" v1 --layers 1 --layer-size 50000 >/dev/null
seed "$IM_WORK/layout" v1 "$SRC_ADDR/ns/app:1"
echo "{\"$SRC_ADDR/ns/app:1\": \"$DST_ADDR/ns/app\"}" >"$IM_WORK/images.json"
write_auth() {
  cat >"$IM_WORK/auth.json" <<JSON
{
  "$SRC_ADDR": {"username": "alice", "password": "alicepass", "insecure": true},
  "$DST_ADDR": {"username": "bob", "password": "${1:-bobpass}", "insecure": true}
}
JSON
  chmod 644 "$IM_WORK/auth.json"
}
run() { im_run "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "$IM_WORK/run.log" "$@"; }

write_auth
run >"$IM_WORK/out1" 2>&1 || fail "first run failed: $(tail -2 "$IM_WORK/out1")"
grep -q "encrypted 2 plaintext secret(s) in $IM_WORK/auth.json" "$IM_WORK/out1" || fail "no notice about encryption"
assert_eq "$(jq -r '.[].password | startswith("enc:v1:")' "$IM_WORK/auth.json" | sort -u)" true "both passwords replaced by enc:v1: ciphertext"
! grep -q -e alicepass -e bobpass "$IM_WORK/auth.json" || fail "plaintext still in auth.json"
assert_eq "$(jq -r ".\"$SRC_ADDR\".username" "$IM_WORK/auth.json")" alice "the rest of the file kept"
assert_eq "$(stat -c %a "$IM_WORK/auth.json")" 600 "auth.json now mode 0600"
assert_eq "$(stat -c %a "$XDG_CONFIG_HOME/image-migrator/key")" 600 "key file mode 0600"
cp "$IM_WORK/auth.json" "$IM_WORK/auth.encrypted"

run >"$IM_WORK/out2" 2>&1 || fail "second run (encrypted file) failed: $(tail -2 "$IM_WORK/out2")"
grep -q "already present, skipped" "$IM_WORK/out2" || fail "second run did not authenticate"
cmp -s "$IM_WORK/auth.json" "$IM_WORK/auth.encrypted" || fail "an already encrypted file was rewritten"
pass "encrypted passwords are decrypted on the next run; file untouched"

# A user edits one password by pasting plaintext over the ciphertext.
jq --arg k "$DST_ADDR" '.[$k].password = "bobpass"' "$IM_WORK/auth.encrypted" >"$IM_WORK/auth.json"
run >"$IM_WORK/out3" 2>&1 || fail "mixed file failed"
assert_eq "$(jq -r ".\"$DST_ADDR\".password | startswith(\"enc:v1:\")" "$IM_WORK/auth.json")" true "pasted plaintext encrypted again"
assert_eq "$(jq -r ".\"$SRC_ADDR\".password" "$IM_WORK/auth.json")" "$(jq -r ".\"$SRC_ADDR\".password" "$IM_WORK/auth.encrypted")" "the other ciphertext kept"

# Another key cannot decrypt: a clear configuration error, nothing leaks.
rc=0
XDG_CONFIG_HOME=$IM_WORK/other-xdg IMAGE_MIGRATOR_KEY=$(openssl rand -base64 32) run >"$IM_WORK/out4" 2>&1 || rc=$?
assert_eq "$rc" 2 "wrong key: exit 2"
grep -q "cannot decrypt with the key from IMAGE_MIGRATOR_KEY" "$IM_WORK/out4" || fail "wrong key message: $(cat "$IM_WORK/out4")"

# IMAGE_MIGRATOR_KEY instead of the key file.
export IMAGE_MIGRATOR_KEY
IMAGE_MIGRATOR_KEY=$(openssl rand -base64 32)
write_auth
run >"$IM_WORK/out5" 2>&1 || fail "IMAGE_MIGRATOR_KEY run failed"
grep -q "with the key from IMAGE_MIGRATOR_KEY" "$IM_WORK/out5" || fail "IMAGE_MIGRATOR_KEY not used"
run >"$IM_WORK/out6" 2>&1 || fail "IMAGE_MIGRATOR_KEY second run failed"
pass "IMAGE_MIGRATOR_KEY encrypts and decrypts"
unset IMAGE_MIGRATOR_KEY

# Read-only file (a mounted Secret) and --no-encrypt-auth: left as they are.
write_auth
chmod 444 "$IM_WORK/auth.json"
cp "$IM_WORK/auth.json" "$IM_WORK/auth.plain"
if [ "$(id -u)" = 0 ]; then
  # root may write anything: make the directory read-only the way a Secret mount is, with a bind mount.
  mkdir -p "$IM_WORK/ro"
  cp "$IM_WORK/auth.plain" "$IM_WORK/ro/auth.json"
  if mount --bind "$IM_WORK/ro" "$IM_WORK/ro" 2>/dev/null && mount -o remount,ro,bind "$IM_WORK/ro" 2>/dev/null; then
    im_on_exit umount "$IM_WORK/ro"
    im_run "$IM_BIN" --auth "$IM_WORK/ro/auth.json" --images "$IM_WORK/images.json" --log "" >"$IM_WORK/out7" 2>&1 ||
      fail "read-only auth file run failed"
    cmp -s "$IM_WORK/ro/auth.json" "$IM_WORK/auth.plain" || fail "read-only file changed"
    pass "read-only mounted auth file left untouched, run succeeded"
  else
    pass "read-only mount not possible here (no CAP_SYS_ADMIN): skipped the mounted-Secret case"
  fi
else
  run >"$IM_WORK/out7" 2>&1 || fail "read-only auth file run failed"
  cmp -s "$IM_WORK/auth.json" "$IM_WORK/auth.plain" || fail "read-only file changed"
  pass "read-only auth file left untouched"
fi
chmod 644 "$IM_WORK/auth.json"
run --no-encrypt-auth >"$IM_WORK/out8" 2>&1 || fail "--no-encrypt-auth run failed"
cmp -s "$IM_WORK/auth.json" "$IM_WORK/auth.plain" || fail "--no-encrypt-auth changed the file"
pass "--no-encrypt-auth leaves the file alone"

# Without HOME and XDG_CONFIG_HOME there is no place of the user's own for a key: nothing is created
# elsewhere (a shared /tmp), the passwords stay as they are, and the run says so.
touch "$IM_WORK/before-no-home"
sleep 0.01
env -u HOME -u XDG_CONFIG_HOME "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" --log "" \
  >"$IM_WORK/out9" 2>&1 || fail "run without HOME failed: $(tail -2 "$IM_WORK/out9")"
cmp -s "$IM_WORK/auth.json" "$IM_WORK/auth.plain" || fail "without HOME: the file changed"
grep -q "plaintext secret(s) left in $IM_WORK/auth.json: no place for a key" "$IM_WORK/out9" || fail "without HOME: no notice"
# (Where the key went without HOME before: /tmp/.config. Other tests write keys under their own work
# directories meanwhile, so only that place is looked at.)
new_keys=$(find /tmp/.config -path '*image-migrator/key*' -newer "$IM_WORK/before-no-home" 2>/dev/null || true)
[ -z "$new_keys" ] || fail "without HOME: a key file was written: $new_keys"
pass "without HOME: no key anywhere, plaintext kept, and the run says so"

# HOME set to a directory that does not exist (HOME=/nonexistent, a CI job's or a container's "no
# home"): it is not created (c4e1e45 created the whole path, as root), nothing is encrypted.
env -u XDG_CONFIG_HOME HOME="$IM_WORK/no-such-home" "$IM_BIN" --auth "$IM_WORK/auth.json" --images "$IM_WORK/images.json" \
  --log "" >"$IM_WORK/out10" 2>&1 || fail "run with a missing HOME failed: $(tail -2 "$IM_WORK/out10")"
[ ! -e "$IM_WORK/no-such-home" ] || fail "a missing HOME was created: $(find "$IM_WORK/no-such-home")"
cmp -s "$IM_WORK/auth.json" "$IM_WORK/auth.plain" || fail "with a missing HOME: the file changed"
grep -q "no place for a key" "$IM_WORK/out10" || fail "with a missing HOME: no notice"
pass "HOME that does not exist: not created, plaintext kept, and the run says so"

# Passwords never appear in any output or log.
! grep -q -e alicepass -e bobpass "$IM_WORK"/out* "$IM_WORK/run.log" || fail "a password leaked into the output"
pass "no password in any output or log"
echo "test_auth_encryption: all checks passed"

#!/usr/bin/env bash
# The install story: scripts/package builds a .deb of this build tree (--no-build: the suite's own
# build is not touched while other tests run its binaries); its Depends line names the
# package of every shared library the binary links (and no -dev package); extracted with dpkg -x into
# a fresh directory root, the binary runs (--version, a real copy between two local registries, a
# verify), the man page renders without warnings and lists every command, and the bash completion
# completes commands, flags and values.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
im_setup

build=$(cd "$(dirname "$IM_BIN")" && pwd)
[ -f "$build/CMakeCache.txt" ] || fail "$build (the directory of IM_BIN) is not a build tree"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")

# ---------------------------------------------------------------- the package
BUILD_DIR=$build "$IM_REPO_ROOT/scripts/package" --no-build "$IM_WORK/dist" >"$IM_WORK/package.out" 2>&1 ||
  fail "scripts/package failed: $(tail -n 20 "$IM_WORK/package.out")"
cat "$IM_WORK/package.out"
mapfile -t debs < <(ls "$IM_WORK"/dist/*.deb)
assert_eq "${#debs[@]}" 1 "scripts/package wrote one .deb"
deb=${debs[0]}
assert_eq "$(dpkg-deb --field "$deb" Package) $(dpkg-deb --field "$deb" Version)" "image-migrator $version-1" \
  "package name and version"
# Run again: idempotent, still one package.
BUILD_DIR=$build "$IM_REPO_ROOT/scripts/package" --no-build "$IM_WORK/dist" >"$IM_WORK/package2.out" 2>&1 ||
  fail "scripts/package, second run: $(tail -n 20 "$IM_WORK/package2.out")"
assert_eq "$(ls "$IM_WORK"/dist | grep -c '\.deb$')" 1 "scripts/package run again: still one .deb"

depends=$(dpkg-deb --field "$deb" Depends)
echo "Depends: $depends"
# The package names of the Depends line, without versions.
mapfile -t dep_names < <(tr ',' '\n' <<<"$depends" | sed -E 's/^ *//; s/[ (].*//' | sed '/^$/d')
# satisfies NAME: the installed packages that are NAME or provide it (libspdlog1.10 provides
# libspdlog1.10-fmt9, the name dpkg-shlibdeps uses), one per line.
satisfies() {
  dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Provides}\n' 2>/dev/null | awk -F'|' -v d="$1" '
    $1 ~ /^ii/ { if ($2 == d) print $2; n = split($3, p, /, */)
                 for (i = 1; i <= n; i++) { sub(/ .*/, "", p[i]); if (p[i] == d) print $2 } }'
}
declare -A provided_by_depends=()
for d in "${dep_names[@]}"; do
  [[ $d != *-dev ]] || fail "Depends names a -dev package: $d"
  found=$(satisfies "$d")
  [ -n "$found" ] || fail "Depends names $d, which nothing installed here is or provides although the binary runs"
  for p in $found; do provided_by_depends[$p]=1; done
done
printf '%s\n' "${dep_names[@]}" | grep -qx ca-certificates || fail "Depends lacks ca-certificates (HTTPS verification)"

# ---------------------------------------------------------------- a fresh root
root=$IM_WORK/root
mkdir "$root"
dpkg -x "$deb" "$root"
bin=$root/usr/bin/image-migrator
for f in usr/bin/image-migrator usr/share/man/man1/image-migrator.1.gz \
  usr/share/bash-completion/completions/image-migrator usr/share/doc/image-migrator/copyright \
  usr/share/doc/image-migrator/README.md; do
  [ -f "$root/$f" ] || fail "the package lacks /$f"
done
pass "the package holds the binary, the man page, the bash completion, README and copyright"
file "$bin" | grep -q "stripped" && ! file "$bin" | grep -q "not stripped" || fail "the packaged binary is not stripped: $(file "$bin")"

# Every shared library the binary needs comes from a package the Depends line names.
# owner PATH: the package that installed PATH (tried as given, resolved, and across the /usr merge).
owner() {
  local p c o real
  real=$(readlink -f "$1")
  for p in "$1" "$real"; do
    for c in "$p" "${p#/usr}" "/usr$p"; do
      o=$(dpkg -S "$c" 2>/dev/null | grep -v '^diversion' | head -n 1 | cut -d: -f1)
      [ -n "$o" ] && echo "$o" && return 0
    done
  done
  return 1
}
mapfile -t needed < <(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
[ "${#needed[@]}" -gt 3 ] || fail "readelf found only ${#needed[@]} shared libraries"
for lib in "${needed[@]}"; do
  # "libx.so.1 => /path (0x...)", or for the dynamic loader "/lib64/ld-linux-x86-64.so.2 (0x...)".
  path=$(ldd "$bin" | awk -v l="$lib" '$1 == l && $2 == "=>" { print $3 } $1 ~ "^/" && $1 ~ ("/" l "$") { print $1 }')
  [ -n "$path" ] && [ -e "$path" ] || fail "$lib: not resolved by ldd: $(ldd "$bin" | grep -F "$lib")"
  pkg=$(owner "$path") || fail "$lib ($path): no package owns it"
  [ -n "${provided_by_depends[$pkg]:-}" ] || fail "$lib comes from $pkg, which Depends does not name ($depends)"
done
pass "Depends covers the ${#needed[@]} shared libraries the binary links: ${needed[*]}"

assert_eq "$("$bin" --version)" "image-migrator $version" "the extracted binary runs: --version"

# ---------------------------------------------------------------- a real copy with it
start_registry src plain
start_registry dst plain
make_layout "$IM_WORK/layout" v1 --layers 2 --layer-size 200000 --seed package >/dev/null
make_layout "$IM_WORK/layout" multi --layers 1 --layer-size 100000 --platforms linux/amd64,linux/arm64 --seed pkg2 >/dev/null
seed "$IM_WORK/layout" v1 "$SRC_ADDR/team/app:1.0"
seed "$IM_WORK/layout" multi "$SRC_ADDR/team/api:2"
cd "$IM_WORK"
printf '{"%s": {"insecure": true}, "%s": {"insecure": true}}\n' "$SRC_ADDR" "$DST_ADDR" >auth.json
printf '{"%s/team/app": "%s/prod/app", "%s/team/api:2": ""}\n' "$SRC_ADDR" "$DST_ADDR" "$SRC_ADDR" >images.json
rc=0
im_run "$bin" --auth auth.json --images images.json --registry "$DST_ADDR" --namespace prod --log "" >copy.out 2>&1 || rc=$?
cat copy.out
assert_eq "$rc" 0 "the extracted binary copies between two registries"
same_digest "$SRC_ADDR/team/app:1.0" "$DST_ADDR/prod/app:1.0" "copied by the packaged binary: team/app:1.0, digest unchanged"
same_digest "$SRC_ADDR/team/api:2" "$DST_ADDR/prod/api:2" "copied by the packaged binary: the two-platform team/api:2"
rc=0
im_run "$bin" verify --output json --auth auth.json --images images.json --registry "$DST_ADDR" --namespace prod \
  >verify.json 2>verify.err || rc=$?
assert_eq "$rc:$(jq -c '[.images[].status]' verify.json)" '0:["same","same"]' "the packaged binary's verify: both same"

# ---------------------------------------------------------------- man page
man_text=$IM_WORK/man.txt
zcat "$root/usr/share/man/man1/image-migrator.1.gz" | groff -man -Tutf8 -ww -z 2>"$IM_WORK/man.warnings" ||
  fail "groff cannot render the man page"
[ ! -s "$IM_WORK/man.warnings" ] || fail "the man page has troff warnings: $(head -n 5 "$IM_WORK/man.warnings")"
zcat "$root/usr/share/man/man1/image-migrator.1.gz" | MANWIDTH=200 groff -man -Tascii -P-cbou 2>/dev/null >"$man_text"
for c in config verify rewrite; do
  grep -q "image-migrator $c" "$man_text" || fail "the man page has no section for $c"
  # Every flag of the command's --help is in the man page.
  for flag in $("$bin" "$c" --help | grep -E '^ {1,6}-' | sed -E 's/^ +(-[A-Za-z0-9], )?(--[a-z0-9][a-z0-9-]*).*/\2/'); do
    grep -q -- "$flag" "$man_text" || fail "the man page lacks $c's $flag"
  done
done
for flag in $("$bin" --help | grep -E '^ {1,6}-' | sed -E 's/^ +(-[A-Za-z0-9], )?(--[a-z0-9][a-z0-9-]*).*/\2/'); do
  grep -q -- "$flag" "$man_text" || fail "the man page lacks $flag"
done
pass "the man page renders without warnings and has every command and flag"

# ---------------------------------------------------------------- bash completion
# complete WORDS...: what the completion offers for the command line WORDS (the last one being
# completed), one per line, sorted.
complete_line() {
  PATH=$root/usr/bin:$PATH bash -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    _image_migrator
    printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$root/usr/share/bash-completion/completions/image-migrator" "$@"
}
assert_eq "$(complete_line image-migrator "" | tr '\n' ' ')" \
  "$("$bin" --help | awk '/^Commands/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && !/^  / { exit }' | sort | tr '\n' ' ')" \
  "completion: the commands"
assert_eq "$(complete_line image-migrator conf)" config "completion: a command"
assert_eq "$(complete_line image-migrator --wor)" --workers "completion: a flag of the copy"
assert_eq "$(complete_line image-migrator verify --ou)" --output "completion: a flag of verify"
assert_eq "$(complete_line image-migrator verify --output "" | tr '\n' ' ')" "json table " "completion: verify --output values"
assert_eq "$(complete_line image-migrator config --flatten "" | tr '\n' ' ')" "all none " "completion: config --flatten values"
assert_eq "$(complete_line image-migrator config --audit)" --audit-table "completion: config --audit-table"
assert_eq "$(complete_line image-migrator --workers "")" "" "completion: nothing after a flag that takes a number"
mkdir -p comp && : >comp/auth-prod.json
assert_eq "$(cd comp && complete_line image-migrator --auth auth-)" auth-prod.json "completion: a file after --auth"
assert_eq "$(cd comp && complete_line image-migrator --auth = auth-)" auth-prod.json "completion: a file after --auth="
echo "test_package: all checks passed"
